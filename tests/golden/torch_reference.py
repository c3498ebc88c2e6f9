"""Prints the torch numbers that the unit tests of src/train/{schedule,loss,clip}.rs compare with.

Regenerate with a Python that has torch:  python tests/golden/torch_reference.py
and paste the printed constants into the tests (they say which block they took).
"""
import torch

torch.set_default_dtype(torch.float64)


def lrs(make, epochs, metrics=None):
    """The lr of each epoch (1-based) in the classic loop: train with the current lr, then step."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make(opt)
    out = []
    for e in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[e])
    return out


def show(name, values):
    print(f"const {name}: [f64; {len(values)}] = [{', '.join(repr(float(v)) for v in values)}];")


S = torch.optim.lr_scheduler
print(f"// torch {torch.__version__}, base lr 0.1, 10 epochs")
show("STEP_3_HALF", lrs(lambda o: S.StepLR(o, step_size=3, gamma=0.5), 10))
show("COSINE_MIN_1E3", lrs(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 10))
# warmup 3 epochs (lr·e/3) then cosine over the remaining 7
show("WARMUP3_COSINE", lrs(lambda o: S.SequentialLR(o, [
    S.LinearLR(o, start_factor=1 / 3, end_factor=1.0, total_iters=2),
    S.CosineAnnealingLR(o, T_max=7, eta_min=0.0)], milestones=[3]), 10))
LOSSES = [1.0, 0.9, 0.95, 0.92, 0.91, 0.9, 0.89999, 0.95, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75]
ACCS = [0.5, 0.6, 0.6, 0.55, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
show("PLATEAU_LOSS_METRICS", LOSSES)
show("PLATEAU_LOSS", lrs(lambda o: S.ReduceLROnPlateau(o, mode="min", patience=2, factor=0.5, min_lr=0.02), 14, LOSSES))
show("PLATEAU_ACC_METRICS", ACCS)
show("PLATEAU_ACC", lrs(lambda o: S.ReduceLROnPlateau(o, mode="max", patience=1, factor=0.1), 14, ACCS))
show("PLATEAU_DEFAULTS", lrs(lambda o: S.ReduceLROnPlateau(o), 14, [1.0] * 14))

print("\n// label smoothing: F.cross_entropy(LOGITS, TARGETS, label_smoothing=eps), mean over the batch")
logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-3.0, 4.0, 1.0], [1.5, 1.5, -2.0]], requires_grad=True)
targets = torch.tensor([0, 2, 1, 1])
for eps in [0.0, 0.1, 0.3]:
    loss = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=eps)
    (g,) = torch.autograd.grad(loss, logits)
    tag = str(eps).replace(".", "_")
    print(f"const CE_SMOOTH_{tag}: f64 = {loss.item()!r};")
    show(f"CE_SMOOTH_{tag}_GRAD", g.flatten().tolist())

print("\n// clip_grad_norm_ of grads [[3, 4], [0, 12]] (norm 13)")
for max_norm in [5.0, 20.0]:
    a = torch.nn.Parameter(torch.zeros(2)); b = torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([3.0, 4.0]); b.grad = torch.tensor([0.0, 12.0])
    total = torch.nn.utils.clip_grad_norm_([a, b], max_norm)
    tag = int(max_norm)
    show(f"CLIP_{tag}", a.grad.tolist() + b.grad.tolist())

print("\n// torchvision.transforms.functional on a 3×2×2 float image (CHW, values in [0, 1])")
import torchvision.transforms.functional as TF
img = torch.tensor([[[0.1, 0.5], [0.9, 0.3]], [[0.2, 0.7], [0.4, 0.0]], [[0.8, 0.6], [0.05, 1.0]]], dtype=torch.float32)
# saturation 1.3, then brightness 0.8, then contrast 1.2 (ColorJitter's order is a permutation)
out = TF.adjust_contrast(TF.adjust_brightness(TF.adjust_saturation(img, 1.3), 0.8), 1.2)
show("JITTER_IN", img.flatten().tolist())
show("JITTER_SAT_BRI_CON", out.flatten().tolist())
