"""Golden data for tests/head_golden.rs: an MLP head's forward and backward in PyTorch.

The head is the nn.Sequential runner builds for

    [head] kind = "mlp", hidden = [5, 4], activation = "gelu", dropout = 0.25, batch_norm = true

on 6 features and 3 classes:

    0 Dropout, 1 Linear(6, 5), 2 BatchNorm1d(5), 3 GELU, 4 Dropout, 5 Linear(5, 4),
    6 BatchNorm1d(4), 7 GELU, 8 Dropout, 9 Linear(4, 3)

Its state dict (torch names under "fc.", float32) goes into the file, with a batch of inputs and
labels, and the float64 reference results: eval-mode logits; train-mode logits, the
cross-entropy loss's gradients w.r.t. every parameter and the input, and the running statistics
after that step. Train mode applies runner's dropout masks (the Python twin of
runner::nn::dropout::mask below) in place of torch's random ones, so both sides drop the same
inputs; everything else is torch's own modules.

Run with a Python that has torch (and numpy):

    /work/venv-torch/bin/python tests/golden/mlp_head.py
"""

import json
import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures/reference/mlp_head_golden.safetensors"
M64 = (1 << 64) - 1
SEED, EPOCH, BATCH, P = 7, 3, 2, 0.25


def mix(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def mask(seed, epoch, batch, layer, n, p):
    key = mix(mix(mix(seed) ^ epoch) ^ batch) ^ layer
    keep = 1.0 / (1.0 - p)
    out = []
    for j in range(n):
        u = (mix((key + j) & M64) >> 11) / float(1 << 53)
        out.append(keep if u >= p else 0.0)
    return out


def save_file(tensors, path, metadata):
    """The safetensors format (8-byte header length, JSON header, little-endian data), written
    here so the script needs torch only."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        data = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)


def head():
    return torch.nn.Sequential(
        torch.nn.Dropout(P), torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5), torch.nn.GELU(),
        torch.nn.Dropout(P), torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.GELU(),
        torch.nn.Dropout(P), torch.nn.Linear(4, 3),
    )


def main():
    torch.manual_seed(16)
    fc = head()
    with torch.no_grad():  # non-trivial BatchNorm parameters and running statistics
        for i in (2, 6):
            bn = fc[i]
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    state = {f"fc.{k}": v.detach().clone().float() for k, v in fc.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    x = torch.randn(8, 6)
    labels = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])

    ref = head().double()
    ref.load_state_dict({k[3:]: v.double() for k, v in state.items()}, strict=False)
    out = {"x": x, "labels": labels.float()}
    out.update(state)

    ref.eval()
    with torch.no_grad():
        out["eval_logits"] = ref(x.double()).float()

    ref.train()
    xt = x.double().requires_grad_(True)
    h, dropout_layer = xt, 0
    for module in ref:
        if isinstance(module, torch.nn.Dropout):
            m = mask(SEED, EPOCH, BATCH, dropout_layer, h.numel(), P)
            h = h * torch.tensor(m, dtype=torch.float64).reshape(h.shape)
            dropout_layer += 1
        else:
            h = module(h)
    out["train_logits"] = h.detach().float()
    loss = torch.nn.functional.cross_entropy(h, labels)
    loss.backward()
    out["train_loss"] = loss.detach().float().reshape(1)
    out["grad.x"] = xt.grad.float()
    for name, p in ref.named_parameters():
        out[f"grad.fc.{name}"] = p.grad.float()
    for i in (2, 6):
        out[f"after.fc.{i}.running_mean"] = ref[i].running_mean.float()
        out[f"after.fc.{i}.running_var"] = ref[i].running_var.float()

    meta = {
        "generator": "tests/golden/mlp_head.py",
        "torch": torch.__version__,
        "step": json.dumps([SEED, EPOCH, BATCH]),
        "dropout": str(P),
        "state_dict_keys": json.dumps(list(fc.state_dict().keys())),
    }
    save_file({k: v.contiguous() for k, v in out.items()}, str(OUT), metadata=meta)
    print(f"wrote {OUT} ({len(out)} tensors); train loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
