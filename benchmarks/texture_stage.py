"""The texture stage alone: its time on a file's realism-1 decode, in-process.

Whole decodes at 24 MP vary by seconds from run to run on a shared machine, more than the
stage itself takes, so the stage is timed here on its own: the file is decoded once at
realism 1 without the stage (``pipeline.decode_file(..., texture=False)``), then the stage
the decoder would run (``sampling.texture.add_texture``, or
``sampling.texture_map.add_mapped_texture`` for a file with a texture map) runs on a copy
of that decode ``--repeat`` times per thread count, and the median is reported. (The
decoder runs the stage on the network's float output; here it starts from the 8-bit
decode, which costs the same.)

    python benchmarks/texture_stage.py FILE.cgdm [FILE.cgdm ...] [--threads 1 2] [--repeat 3] [--out results.json]

To compare two versions of the code, run it with ``env PYTHONPATH=CHECKOUT python -P``
for the other one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def stage(path: Path):
    """The decode the stage starts from, and a function that runs the stage on a copy of it
    with a given thread count."""
    from cgdm_codec import pipeline
    from cgdm_codec.container import parse
    from cgdm_codec.options import DecodeSettings

    f = parse(path.read_bytes())
    rgb = pipeline.decode_file(f, DecodeSettings(realism=1.0), texture=False)
    decode = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
    bundle, decoder = pipeline.resolve(f, True)
    net, _ = bundle.realism_net(decoder, 1.0)
    cfg = net.generation.texture_for(decoder.path.stem)
    target = pipeline._texture_targets(f, bundle, None)
    condition = bundle.base.condition(f.base_streams, f.quality)  # the base quantiser the model reads

    def run(threads: int) -> np.ndarray:
        x = decode.copy()
        if target is None:
            from cgdm_codec.sampling.texture import add_texture

            return add_texture(x, f.seed, condition, 1.0, cfg, workers=threads)
        from cgdm_codec.sampling.texture_map import add_mapped_texture

        return add_mapped_texture(x, f.seed, 1.0, cfg, target, workers=threads)

    return f, target is not None, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    results = []
    for path in args.files:
        f, mapped, run = stage(path)
        result = {"file": path.name, "size": [f.width, f.height], "texture map": mapped, "seconds": {}}
        run(args.threads[0])  # once untimed: the noise patch and the first allocations
        for threads in args.threads:
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                run(threads)
                times.append(time.perf_counter() - t)
            result["seconds"][threads] = round(statistics.median(times), 3)
            print(f"{path.name}: {f.width}x{f.height}, {'mapped' if mapped else 'map-less'} stage, {threads} "
                  f"thread(s): median {statistics.median(times):.3f} s ({', '.join(f'{t:.2f}' for t in times)})")
        results.append(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": "python benchmarks/texture_stage.py " + " ".join(
            [*(p.name for p in args.files), "--threads", *map(str, args.threads), "--repeat", str(args.repeat)]),
            "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
