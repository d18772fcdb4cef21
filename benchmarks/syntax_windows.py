"""How many of a large photo's pooling windows the syntax generator needs: the symbols from
a spread of ``N`` windows against those from all of them, and the time.

    python benchmarks/syntax_windows.py /tmp/large6 /tmp/big/mosaic.png --levels 1 3 5 --most 8 16 24 32

Each photo (full size) is AV1-coded at each level (libaom speed 6: only x~ matters here),
decoded as the decoder does, and passed to the newest generation's syntax generator (ONNX
Runtime, as the default encoder runs it) once over all 512-px windows and once per
``--most``. Per setting: how many of the 24 symbols differ from the all-window symbols (and
by how much at most), and the generator's seconds.

``--decoded N`` instead codes each photo with the real encoder (default effort) twice, reading
all windows and N of them, decodes both files and prints their sizes and PSNR / MS-SSIM /
HaarPSI:

    python benchmarks/syntax_windows.py /tmp/large6/lomiri1604_Bridge_by_Sander_Klootwijk.jpg --levels 1 3 --decoded 24
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cgdm_codec import generations
from cgdm_codec.base import av1
from cgdm_codec.engines.onnx import syntax_generator
from cgdm_codec.runtime import symbols_of
from cgdm_lab.evaluation.images import list_images, load_reference, to_rgb_array


def decoded(path: Path, level: int, most: int) -> dict:
    """Bytes and quality of the default encode's decode, reading all syntax windows and ``most``."""
    import dataclasses

    import cgdm_codec
    from cgdm_codec import pipeline
    from cgdm_codec.container import parse
    from cgdm_codec.options import DecodeSettings
    from cgdm_codec.quality import haarpsi, ms_ssim, psnr
    from cgdm_codec.tuning import effort

    img = load_reference(path)
    ref = to_rgb_array(img)
    shipped, out = effort.EFFORTS_CPU["default"], {}
    try:
        for name, windows in (("all", None), (str(most), most)):
            effort.EFFORTS_CPU["default"] = dataclasses.replace(shipped, syntax_windows=windows)
            data = cgdm_codec.encode(img, level, effort="default")
            dec = pipeline.decode_file(parse(data), DecodeSettings())
            out[name] = dict(bytes=len(data), psnr=round(psnr(ref, dec), 3), ms_ssim=round(ms_ssim(ref, dec), 5),
                             haarpsi=round(haarpsi(ref, dec), 4))
    finally:
        effort.EFFORTS_CPU["default"] = shipped
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path, nargs="+", help="photos, or folders of photos")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--most", type=int, nargs="+", default=[8, 16, 24, 32])
    ap.add_argument("--decoded", type=int, default=None, metavar="N")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    files = [f for p in args.images for f in (list_images(p) if p.is_dir() else [p])]
    if args.decoded is not None:
        for path in files:
            for level in args.levels:
                print(path.name, level, decoded(path, level, args.decoded), flush=True)
        return
    bundle = generations.load_bundle("av1")
    gen = bundle.newest.generation
    generator = syntax_generator(gen, None)
    rows = []
    for path in files:
        rgb = to_rgb_array(load_reference(path))
        h, w = rgb.shape[:2]
        x01 = rgb.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
        for level in args.levels:
            payload = av1.encode_avif(rgb, av1.quality_for(level), 6)
            xt = np.asarray(av1.decode_avif(payload).convert("RGB"))
            xt01 = xt.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
            t = time.perf_counter()
            full = symbols_of(generator.values(x01, xt01), generator.cfg.symbol_range)
            row = dict(image=path.name, megapixels=h * w / 1e6, level=level, all_s=time.perf_counter() - t)
            for most in args.most:
                t = time.perf_counter()
                part = symbols_of(generator.values(x01, xt01, most), generator.cfg.symbol_range)
                row[f"{most}_s"] = time.perf_counter() - t
                row[f"{most}_differ"] = int((part != full).sum())
                row[f"{most}_max"] = int(np.abs(part - full).max())
            rows.append(row)
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    print("| windows read | symbols that differ (of 24), mean | most | max difference | seconds, mean |")
    print("|---|---:|---:|---:|---:|")
    print(f"| all | 0 | 0 | 0 | {np.mean([r['all_s'] for r in rows]):.2f} |")
    for most in args.most:
        d = [r[f"{most}_differ"] for r in rows]
        print(f"| {most} | {np.mean(d):.2f} | {max(d)} | {max(r[f'{most}_max'] for r in rows)} "
              f"| {np.mean([r[f'{most}_s'] for r in rows]):.2f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"levels": args.levels, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
