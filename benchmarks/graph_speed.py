"""Time a generation's network graphs on one tile, one thread: what a width choice costs.

    python benchmarks/graph_speed.py cgdm-av1-6 cgdm-av1-7 [--tile 264] [--repeat 15]

A name is shipped weights, or a ``.safetensors`` path whose ONNX graphs were exported beside
it (``cgdm_lab.train.export_onnx``). For each: the features graph (once per tile) and the
denoise graph (one sampler step), float32 and, where the manifest has them, int8, each run
``--repeat`` times in turn with the others on a random tile; min and median in ms, and the
network's FLOP per pixel. FLOPs alone mislead here: ONNX Runtime's CPU convolutions work on
blocks of 16 channels (AVX-512), so a level of 24 channels costs about as much as one of 32.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from cgdm_codec.runtime import graph_paths, quantised_paths, session
from cgdm_codec.weights import read_manifest, weights_dir


def weights_path(name: str) -> Path:
    return Path(name) if name.endswith(".safetensors") else weights_dir() / f"{name}.safetensors"


def feeds(weights: Path, tile: int, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    """Per graph (role[.int8]) its session and the session's inputs for one random tile."""
    manifest = read_manifest(weights)
    graphs = {role: p for role, p in graph_paths(weights, manifest).items() if role in ("condition", "features", "denoise")}
    graphs.update({f"{role}.int8": p for role, p in quantised_paths(weights, manifest).items()})
    x = rng.uniform(-1, 1, (1, 3, tile, tile)).astype(np.float32)
    length = manifest["config"]["syntax"]["length"]
    condition = session(graphs["condition"], 1)
    offered_condition = {"t": np.array([999]), "syntax": np.zeros((1, length), np.float32), "quality": np.array([100]),
                         "realism": np.ones(1, np.float32)}  # a realism network's condition reads the dial (at 1)
    names = {i.name for i in condition.get_inputs()}
    cond = condition.run(None, {k: v for k, v in offered_condition.items() if k in names})[0]
    feats = session(graphs["features"], 1).run(None, {"x_tilde": x})
    offered = {"x_t": x, "x_tilde": x, "cond": cond, **{f"e{i}": f for i, f in enumerate(feats)}}
    out = {}
    for role, path in graphs.items():
        if role == "condition":
            continue
        sess = session(path, 1)  # held here: the runtime's session cache is smaller than many weights' graphs
        names = {i.name for i in sess.get_inputs()}
        out[role] = {"session": sess, "feed": {k: v for k, v in offered.items() if k in names}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--tile", type=int, default=264)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from network_flops import flop_per_pixel

    rng = np.random.default_rng(0)
    runs = {(name, role): g for name in args.weights for role, g in feeds(weights_path(name), args.tile, rng).items()}
    times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    import time

    for _ in range(args.repeat):
        for key, g in runs.items():
            start = time.perf_counter()
            g["session"].run(None, g["feed"])
            times[key].append(time.perf_counter() - start)
    rows = []
    for name in args.weights:
        kflop = flop_per_pixel(str(weights_path(name)), args.tile) / 1e3
        for (n, role), t in times.items():
            if n == name:
                rows.append({"weights": name, "graph": role, "kflop_per_pixel": round(kflop, 2),
                             "min_ms": round(min(t) * 1e3, 2), "median_ms": round(float(np.median(t)) * 1e3, 2)})
                print(f"{name:24s} {role:14s} {kflop:6.1f} kFLOP/px  min {min(t) * 1e3:6.1f} ms  "
                      f"median {np.median(t) * 1e3:6.1f} ms")
    if args.out:
        args.out.write_text(json.dumps({"tile": args.tile, "threads": 1, "repeat": args.repeat, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
