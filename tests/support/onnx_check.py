"""Checks an ONNX file with onnx.checker and runs it with onnxruntime (tests/export_onnx.rs).

usage: onnx_check.py MODEL INPUT N H W REPEATS
INPUT holds N*3*H*W little-endian float32 values (NCHW). Prints one JSON object: the logits
(row-major), the model's metadata, and the median seconds of REPEATS runs of the whole batch.
"""
import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

path, data, n, h, w, repeats = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)
x = np.fromfile(data, dtype="<f4").reshape(n, 3, h, w)
options = ort.SessionOptions()
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
logits = session.run(["logits"], {"input": x})[0]
times = []
for _ in range(repeats):
    t = time.perf_counter()
    session.run(["logits"], {"input": x})
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({
    "logits": logits.astype(float).ravel().tolist(),
    "shape": list(logits.shape),
    "opset": model.opset_import[0].version,
    "batch_dim": model.graph.input[0].type.tensor_type.shape.dim[0].dim_param,
    "metadata": {p.key: p.value for p in model.metadata_props},
    "seconds": times[len(times) // 2] if times else None,
}))
