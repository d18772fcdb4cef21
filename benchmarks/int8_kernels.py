"""Which of ONNX Runtime's int8 convolution kernels a CPU gives the shipped int8 graphs.

    python benchmarks/int8_kernels.py [cgdm-av1-6] [--tile 264] [--repeat 15] [--out F.json]

``QLinearConv`` takes its symmetric kernels (AVX-512 VNNI on x86) when every weight zero
point is 0, as in our graphs (``train/quantise.py``: ``WeightSymmetric``), and otherwise its
general int8 matrix product, the path where ONNX Runtime's AMX kernels live. The question is
whether an AMX CPU would run our graphs faster down the general path. To ask it without
changing a single dequantised value, each int8 weight q with zero point 0 becomes q - 1 with
zero point -1 (the weights are in -127..127, so q - 1 still fits). Both forms run on one
random tile, one thread, in turn; their outputs must agree exactly, else the comparison is
void. Besides the two int8 forms, the float32 graph is timed for scale.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from graph_speed import feeds, weights_path  # noqa: E402


def shifted_zero_points(path: Path) -> tuple[bytes, int]:
    """The graph at ``path`` with its symmetric int8 weights re-expressed as (q - 1, zero
    point -1): the same dequantised values, the general kernel's path. Returns the
    serialised model (external tensors read in) and how many weights changed."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=True)
    inits = {i.name: i for i in model.graph.initializer}
    changed = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        q, zp = inits.get(node.input[0]), inits.get(node.input[2])
        if q is None or zp is None or q.data_type != onnx.TensorProto.INT8:
            continue
        qa, za = numpy_helper.to_array(q), numpy_helper.to_array(zp)
        if za.any() or qa.min() < -127:
            continue
        q.CopyFrom(numpy_helper.from_array((qa.astype(np.int16) - 1).astype(np.int8), q.name))
        zp.CopyFrom(numpy_helper.from_array(np.full_like(za, -1), zp.name))
        changed += 1
    return model.SerializeToString(), changed


def cpu_flags() -> dict[str, Any]:
    """The CPU's name and the flags that decide ONNX Runtime's int8 kernels."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if platform.system() == "Linux" else ""
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")), "")
    flags = set(text.split())
    return {"cpu": name, "avx512_vnni": "avx512_vnni" in flags, "amx_int8": "amx_int8" in flags}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="?", default="cgdm-av1-6")
    ap.add_argument("--tile", type=int, default=264)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import onnxruntime as ort

    from cgdm_codec.runtime import quantised_paths, session_options
    from cgdm_codec.weights import read_manifest

    weights = weights_path(args.weights)
    graphs = feeds(weights, args.tile, np.random.default_rng(0))
    changed = {}
    for role, path in quantised_paths(weights, read_manifest(weights)).items():
        model, changed[role] = shifted_zero_points(path)
        opts = session_options(1, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        graphs[f"{role}.int8.shifted"] = {"session": sess, "feed": graphs[f"{role}.int8"]["feed"]}
    times: dict[str, list[float]] = {key: [] for key in graphs}
    for _ in range(args.repeat):
        for key, g in graphs.items():
            start = time.perf_counter()
            g["session"].run(None, g["feed"])
            times[key].append(time.perf_counter() - start)
    rows = []
    for key, t in times.items():
        row: dict[str, Any] = {"graph": key, "min_ms": round(min(t) * 1e3, 2), "median_ms": round(float(np.median(t)) * 1e3, 2)}
        if key.endswith(".shifted"):
            base = key.removesuffix(".shifted")
            a = graphs[base]["session"].run(None, graphs[base]["feed"])
            b = graphs[key]["session"].run(None, graphs[key]["feed"])
            row["max_abs_difference"] = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
            row["weights_shifted"] = changed[base.split(".")[0]]
        rows.append(row)
        extra = "".join(f"  {k} {row[k]}" for k in ("max_abs_difference", "weights_shifted") if k in row)
        print(f"{key:26s} min {row['min_ms']:6.1f} ms  median {row['median_ms']:6.1f} ms{extra}")
    if args.out:
        args.out.write_text(json.dumps({"weights": args.weights, "tile": args.tile, "threads": 1, "repeat": args.repeat,
                                        "onnxruntime": ort.__version__, **cpu_flags(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
