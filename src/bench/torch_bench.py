"""PyTorch side of `runner bench`: the same models, shapes and thread count, printed as one
JSON object on stdout. Run by `runner bench` when BENCH_TORCH names a Python with torch;
torch is never a run-time dependency of runner.

Usage: python3 torch_bench.py THREADS QUICK(0|1) IMAGE_DIR
Every measurement carries `busy`: the share of the machine's CPU time used by *other*
processes while it ran (from /proc/stat and /proc/self/stat), so noisy runs can be discarded.
"""
import json
import os
import sys
import time


def cpu_sample():
    """(machine busy jiffies, this process's jiffies, wall seconds)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    busy = sum(fields[:8]) - fields[3] - fields[4]
    with open("/proc/self/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    own = int(st[11]) + int(st[12])  # utime, stime (fields 14, 15)
    return busy, own, time.monotonic()


def busy_share(a, b):
    """CPU share of other processes between samples a and b, in % of all cores."""
    hz = os.sysconf("SC_CLK_TCK")
    wall = max(b[2] - a[2], 1e-9)
    others = max((b[0] - a[0]) - (b[1] - a[1]), 0) / hz
    return 100.0 * others / (wall * os.cpu_count())


MIN_WINDOW_S = 0.5  # as in src/bench/busy.rs: /proc/stat ticks are 10 ms


def timed(fn, iters, warmup=1):
    """Median seconds per call over at least `iters` calls (more for short calls, up to a
    MIN_WINDOW_S window) after `warmup` calls, and the busy share over the timed calls."""
    for _ in range(warmup):
        fn()
    times = []
    a = cpu_sample()
    start = time.monotonic()
    while len(times) < iters or (time.monotonic() - start < MIN_WINDOW_S and len(times) < 1000):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    b = cpu_sample()
    times.sort()
    return times[len(times) // 2], busy_share(a, b)


def mkldnn_version(torch):
    """oneDNN's version as torch's build configuration names it ("MKL-DNN v3.x.y ..."), or None."""
    for line in torch.__config__.show().splitlines():
        if "MKL-DNN" in line or "oneDNN" in line:
            return line.strip().lstrip("- ").strip()
    return None


def main():
    threads, quick, image_dir = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # What the table's PyTorch column ran on: its thread pools and its oneDNN build.
        "parallel_info": torch.__config__.parallel_info(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkldnn_version": mkldnn_version(torch),
    }
    it = 2 if quick else 5

    # The model rows: the homework loop on the files runner's rows used (same copies).
    for w in json.loads(os.environ["BENCH_WORKLOADS"]):
        out[w["key"]] = homework(w, torch, nn, torchvision)

    # Conv layers: same list as the Rust side (name, c_in, c_out, k, stride, groups, size).
    convs = {}
    for name, ci, co, k, s, g, hw in json.loads(os.environ["BENCH_CONV_LAYERS"]):
        x = torch.randn(4, ci, hw, hw, requires_grad=True)
        w = torch.randn(co, ci // g, k, k, requires_grad=True)
        pad = k // 2
        y = F.conv2d(x, w, None, s, pad, 1, g)
        flop = 2.0 * y.numel() * (ci // g) * k * k
        gy = torch.randn_like(y)
        fwd, busy_f = timed(lambda: F.conv2d(x.detach(), w.detach(), None, s, pad, 1, g), it)
        # Backward to input and weight together (what a training step does).
        def bwd():
            yy = F.conv2d(x, w, None, s, pad, 1, g)
            torch.autograd.grad(yy, (x, w), gy)
        fb, busy_b = timed(bwd, it)
        convs[name] = {
            "fwd_gflops": flop / fwd / 1e9,
            "bwd_gflops": 2 * flop / max(fb - fwd, 1e-9) / 1e9,
            "busy": max(busy_f, busy_b),
        }
    out["conv"] = convs

    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    s, busy = timed(lambda: torch.mm(a, b), 3 if quick else 10)
    out["matmul"] = {"gflops": 2.0 * n**3 / s / 1e9, "busy": busy}

    out["images"] = load_images(image_dir, it)
    print(json.dumps(out))


def homework(w, torch, nn, torchvision):
    """The 40-line PyTorch script a user would write: ImageFolder -> DataLoader -> model ->
    CrossEntropyLoss -> SGD for one epoch over train (kind "train"), or the frozen backbone in
    eval mode over train and val (kind "features"). Images/s of that pass (of the last of
    `epochs` epochs for training, the first warming up), like runner's row.
    Precision "bf16-mixed" runs the forward pass under torch.autocast("cpu", torch.bfloat16),
    as Lightning's precision="bf16-mixed" does. Training rows run in both memory formats (NCHW
    and channels_last) and report the faster: PyTorch's best on this CPU."""
    from torchvision import datasets, transforms as T

    tf = T.Compose([T.Resize(w["resize"]), T.CenterCrop(w["crop"]), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    root = w["data"]
    bf16 = w.get("precision") == "bf16-mixed"
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    if w["kind"] == "train":
        best = None
        for fmt in (torch.contiguous_format, torch.channels_last):
            torch.manual_seed(0)
            train = datasets.ImageFolder(os.path.join(root, "train"), tf)
            loader = torch.utils.data.DataLoader(train, batch_size=w["batch"], shuffle=True)
            model = getattr(torchvision.models, w["backbone"])(num_classes=len(train.classes))
            model = model.to(memory_format=fmt)
            model.train()
            loss_fn = nn.CrossEntropyLoss()
            opt = torch.optim.SGD(model.parameters(), lr=float(os.environ["BENCH_LR"]),
                                  momentum=0.9,
                                  weight_decay=float(os.environ["BENCH_WEIGHT_DECAY"]))
            for epoch in range(w.get("epochs", 1)):
                # the last epoch is timed; the ones before warm up, as on runner's side
                a = cpu_sample()
                start = time.monotonic()
                n = 0
                for x, y in loader:
                    opt.zero_grad()
                    with autocast():
                        loss = loss_fn(model(x.to(memory_format=fmt)), y)
                    loss.backward()
                    opt.step()
                    n += len(y)
                s = time.monotonic() - start
            row = {"img_s": n / s, "busy": busy_share(a, cpu_sample()),
                   "memory_format": "channels_last" if fmt == torch.channels_last else "NCHW"}
            if best is None or row["img_s"] > best["img_s"]:
                best = row
        return best
    model = lite0(nn)[:-1]  # the backbone up to the pooled features, no head
    model.eval()
    a = cpu_sample()
    start = time.monotonic()
    n = 0
    for split in ("train", "val"):
        ds = datasets.ImageFolder(os.path.join(root, split), tf)
        with torch.no_grad(), autocast():
            for x, _ in torch.utils.data.DataLoader(ds, batch_size=32):
                model(x)
                n += len(x)
    s = time.monotonic() - start
    return {"img_s": n / s, "busy": busy_share(a, cpu_sample()), "memory_format": "NCHW"}


def load_images(image_dir, iters):
    """torchvision + PIL on the same files: decode, Resize(256), CenterCrop(224), ToTensor,
    Normalize, in this process (DataLoader's default num_workers=0)."""
    from PIL import Image
    from torchvision import transforms as T

    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    files = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(image_dir) for f in fs
        if f.lower().endswith((".jpg", ".jpeg", ".png")))

    def run():
        for p in files:
            with open(p, "rb") as fh:
                tf(Image.open(fh).convert("RGB"))

    s, busy = timed(run, iters)
    return {"img_s": len(files) / s, "busy": busy, "files": len(files)}


def lite0(nn):
    """EfficientNet-Lite0 with the block table of src/models/efficientnet.rs (no SE, ReLU6,
    BatchNorm ε 1e-3). Symmetric k//2 padding instead of TF SAME: same shapes and FLOPs."""

    def cbr(ci, co, k, s, g=1, act=True):
        layers = [nn.Conv2d(ci, co, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(co, eps=1e-3)]
        return layers + ([nn.ReLU6(inplace=True)] if act else [])

    class Block(nn.Module):
        def __init__(self, ci, cx, co, k, s):
            super().__init__()
            layers = cbr(ci, cx, 1, 1) if cx != ci else []
            layers += cbr(cx, cx, k, s, cx) + cbr(cx, co, 1, 1, act=False)
            self.body = nn.Sequential(*layers)
            self.res = s == 1 and ci == co

        def forward(self, x):
            y = self.body(x)
            return x + y if self.res else y

    table = [(32, 32, 16, 3, 1), (16, 96, 24, 3, 2), (24, 144, 24, 3, 1), (24, 144, 40, 5, 2),
             (40, 240, 40, 5, 1), (40, 240, 80, 3, 2), (80, 480, 80, 3, 1), (80, 480, 80, 3, 1),
             (80, 480, 112, 5, 1), (112, 672, 112, 5, 1), (112, 672, 112, 5, 1),
             (112, 672, 192, 5, 2), (192, 1152, 192, 5, 1), (192, 1152, 192, 5, 1),
             (192, 1152, 192, 5, 1), (192, 1152, 320, 3, 1)]
    return nn.Sequential(*cbr(3, 32, 3, 2), *[Block(*b) for b in table], *cbr(320, 1280, 1, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000))


if __name__ == "__main__":
    main()
