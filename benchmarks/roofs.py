"""Matmul roofs on this machine (GFLOP/s or GOP/s), shapes as in one MiniLM FFN layer."""

from __future__ import annotations

import time
from typing import Any

M, K, N = 4096, 384, 1536


def _best(fn: Any, reps: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 2 * M * K * N / best / 1e9


def _ort_matmul(int8: bool) -> float:
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])
    if int8:
        w = numpy_helper.from_array(rng.integers(-127, 127, (K, N), dtype=np.int8), "w")
        nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
                 helper.make_node("MatMulInteger", ["q", "w", "z"], ["y"])]
        y = helper.make_tensor_value_info("y", TensorProto.INT32, [M, N])
    else:
        w = numpy_helper.from_array(rng.standard_normal((K, N), dtype=np.float32), "w")
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])
    graph = helper.make_graph(nodes, "roof", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"x": rng.standard_normal((M, K), dtype=np.float32)}
    return _best(lambda: sess.run(None, feed))


def measure_roofs() -> dict[str, float]:
    import torch

    a, b = torch.randn(M, K), torch.randn(K, N)
    ab, bb = a.bfloat16(), b.bfloat16()
    return {
        "fp32": _best(lambda: a @ b),
        "bf16": _best(lambda: ab @ bb),
        "ort-fp32": _ort_matmul(False),
        "ort-int8": _ort_matmul(True),
    }
