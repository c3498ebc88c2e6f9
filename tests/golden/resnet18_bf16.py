"""Writes tests/fixtures/reference/resnet18_bf16_autocast.safetensors: the golden ResNet-18
(torchvision resnet18(num_classes=2) with the hash fill of tests/fixtures/pytorch/
make_checkpoints.py, on the input and target of resnet18_golden_io.safetensors) run under
torch.autocast("cpu", dtype=torch.bfloat16), as Lightning's precision="bf16-mixed" runs it:
eval logits, train logits, the mean cross-entropy and the same gradients as the f32 golden.

Regenerate with a Python that has torch and torchvision and safetensors:
    python tests/golden/resnet18_bf16.py
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures", "pytorch"))
from make_checkpoints import hash_filled_resnet18  # noqa: E402

REFERENCE = os.path.join(HERE, "..", "fixtures", "reference")


def main():
    golden = load_file(os.path.join(REFERENCE, "resnet18_golden_io.safetensors"))
    x, target = golden["input"], golden["target"]
    model, _ = hash_filled_resnet18()
    out = {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.eval()
        with torch.no_grad():
            out["logits_eval"] = model(x).float()
        model.train()
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
    loss.backward()
    out["logits_train"] = logits.detach().float()
    out["loss_train"] = loss.detach().reshape(1)
    out["grad.conv1.weight"] = model.conv1.weight.grad
    out["grad.bn1.weight"] = model.bn1.weight.grad
    out["grad.layer4.1.conv2.weight[:8]"] = model.layer4[1].conv2.weight.grad[:8]
    out["grad.fc.weight"] = model.fc.weight.grad
    out["grad.fc.bias"] = model.fc.bias.grad
    out = {k: v.contiguous().float() for k, v in out.items()}
    meta = {
        "arch": "torchvision resnet18(num_classes=2), hash-filled as resnet18_golden_io",
        "precision": "torch.autocast('cpu', dtype=torch.bfloat16)",
        "torch": torch.__version__,
    }
    save_file(out, os.path.join(REFERENCE, "resnet18_bf16_autocast.safetensors"), metadata=meta)
    for k, v in out.items():
        print(k, list(v.shape), v.flatten()[:3].tolist())


if __name__ == "__main__":
    main()
