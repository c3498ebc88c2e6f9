"""Loads the MLP head of a runner run's model.safetensors into the equivalent torch
nn.Sequential with strict=True, and checks torch's logits on the run's cached features' shape.

    /work/venv-torch/bin/python tests/golden/load_runner_head.py RUN_DIR/model.safetensors HEAD WIDTH...

HEAD is the backbone's head name (`_fc` for EfficientNet-Lite0, `fc` otherwise); the widths
are the run's `head.hidden`, then the class count. ReLU and no BatchNorm (the main MLP job).
"""

import json
import sys

import torch


def read_safetensors(path):
    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = bytearray(data[8 + n + a:8 + n + b])
        out[name] = torch.frombuffer(buf, dtype=torch.float32).reshape(info["shape"])
    return out


def main():
    path, head, *widths = sys.argv[1:]
    widths = [int(w) for w in widths]
    tensors = read_safetensors(path)
    state = {k[len(head) + 1:]: v for k, v in tensors.items() if k.startswith(head + ".")}
    layers, width = [], None
    features = state["1.weight"].shape[1]
    width = features
    for w in widths[:-1]:
        layers += [torch.nn.Dropout(0.2), torch.nn.Linear(width, w), torch.nn.ReLU()]
        width = w
    layers += [torch.nn.Dropout(0.2), torch.nn.Linear(width, widths[-1])]
    fc = torch.nn.Sequential(*layers)
    fc.load_state_dict(state, strict=True)
    fc.eval()
    x = torch.randn(4, features)
    print(f"loaded {sorted(state)} into {fc} (strict); logits of 4 random inputs: {fc(x).shape}")


if __name__ == "__main__":
    main()
