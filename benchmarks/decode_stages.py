"""Where the time of one ``cgdm decode`` goes: start-up, AV1, weights, features, steps,
blending, PNG — for either runtime, in a fresh process per run.

    python benchmarks/decode_stages.py FILE.cgdm [--runtime onnx|torch] [--steps N] [--repeat 3] [--fast]

Each run is a new Python process that times its own stages with ``time.perf_counter``:
``imports`` (cgdm_codec, numpy, Pillow, and onnxruntime or torch, as the decode loads
them), ``av1`` (the base decode), ``weights`` (hashing the weights, building the ONNX
sessions or loading the torch model), ``features`` and ``network steps`` (the network
calls), ``sampler rest`` (tiling, blending and the DDIM arithmetic: the sampler's time
minus its network calls) and ``png`` (writing the output as the CLI does: ``imageio.write_image`` at level 1).
``python`` is the interpreter's own start-up (``python -c pass``), measured apart, and
``third-party`` the part of ``imports`` that is numpy, Pillow and the runtime alone (another
fresh process; not added to the total). The
median over the runs of every stage is printed as a markdown row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from prepare import write_bytecode

CHILD = r'''
import sys, time, json
t0 = time.perf_counter()
runtime, path, steps, fast = sys.argv[1], sys.argv[2], int(sys.argv[3]) or None, sys.argv[4] == "1"
from cgdm_codec import engines, generations, pipeline
from cgdm_codec.container import parse
from cgdm_codec.options import DecodeSettings
from PIL import Image
import numpy as np
if runtime == "onnx":
    import onnxruntime
    from cgdm_codec.runtime import OrtDenoiser as D
else:
    import torch
    from cgdm_codec.sampling.torch_denoiser import TorchDenoiser as D
from cgdm_codec.sampling import restore as restore_module
stages = {"imports": time.perf_counter() - t0, "network": 0.0, "features": 0.0}
def timed(key, fn):
    def wrapper(*a, **k):
        s = time.perf_counter(); out = fn(*a, **k)
        stages[key] += time.perf_counter() - s
        return out
    return wrapper
D.features = timed("features", D.features)
D.denoise = timed("network", D.denoise)
f = parse(open(path, "rb").read())
bundle = generations.load_bundle(f.base_codec)
s = time.perf_counter(); bundle.base.decode_rgb(f.base_streams, f.width, f.height); stages["av1"] = time.perf_counter() - s
decoder = bundle.decoder_for(f.weights_id)
s = time.perf_counter()
if fast:  # the distilled network's sessions and weights are what the decode builds
    decoder = bundle.fast_companion(decoder) or decoder
if runtime == "onnx":
    from cgdm_codec.engines.onnx import denoiser
    denoiser(decoder.generation, None)
    decoder.generation.prior_table
else:
    decoder.generation.torch_model(decoder.sampler)
stages["weights"] = time.perf_counter() - s
canvas = restore_module.decode_canvas
def sampler(*a, **k):
    s = time.perf_counter(); out = canvas(*a, **k); stages["sampler"] = time.perf_counter() - s; return out
restore_module.decode_canvas = sampler
s = time.perf_counter()
rgb = pipeline.decode_file(f, DecodeSettings(steps=steps, runtime=runtime, device="cpu", fast=fast))
from cgdm_codec.imageio import write_image
s = time.perf_counter()
with open("/dev/null", "wb") as sink:
    write_image(Image.fromarray(rgb), sink, "PNG")
stages["png"] = time.perf_counter() - s
stages["sampler rest"] = stages["sampler"] - stages["network"] - stages["features"]
stages["total"] = time.perf_counter() - t0
print(json.dumps(stages))
'''

#: The same imports' third-party part alone (numpy, Pillow with the AVIF and PNG plugins, and
#: the runtime), in a fresh process: what no change inside cgdm can take off ``imports``.
FLOOR = r'''
import sys, time
t0 = time.perf_counter()
import numpy, PIL.Image, PIL.AvifImagePlugin, PIL.PngImagePlugin
if sys.argv[1] == "onnx":
    import onnxruntime
else:
    import torch
print(time.perf_counter() - t0)
'''

ORDER = ("python", "imports", "third-party", "av1", "weights", "features", "network", "sampler rest", "png", "total")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--runtime", default="onnx", choices=["onnx", "torch"])
    ap.add_argument("--steps", type=int, default=0, help="0: the file's own step count")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fast", action="store_true", help="decode with --fast (the distilled network)")
    args = ap.parse_args()
    print(write_bytecode(), file=sys.stderr)
    runs = []
    for _ in range(args.repeat):
        s = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python = time.perf_counter() - s
        out = subprocess.run([sys.executable, "-c", CHILD, args.runtime, args.file, str(args.steps), "1" if args.fast else "0"],
                             capture_output=True, text=True, check=True).stdout
        floor = subprocess.run([sys.executable, "-c", FLOOR, args.runtime], capture_output=True, text=True,
                               check=True).stdout
        runs.append(dict(json.loads(out.strip().splitlines()[-1]), python=python,
                         **{"third-party": float(floor.strip().splitlines()[-1])}))
    med = {k: statistics.median(r[k] for r in runs) for k in ORDER}
    med["total"] += med["python"]
    print("| runtime | steps | " + " | ".join(ORDER) + " |")
    print("|---|---:|" + "---:|" * len(ORDER))
    print(f"| {args.runtime} | {args.steps or 'file'} | " + " | ".join(f"{med[k]:.3f}" for k in ORDER) + " |")


if __name__ == "__main__":
    main()
