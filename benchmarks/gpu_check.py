"""One minute of a lent accelerator: do the golden files decode on it as on the CPU, and how
fast is a decode there?

    python benchmarks/gpu_check.py --out $OUT            (on the device: CUDA, torch runtime)
    python benchmarks/gpu_check.py --device cpu --out /tmp/gpu-check --no-large   (dry run here)

For every golden file in ``tests/golden`` with a pinned decode beside it (``.full.png`` at
realism 0, ``.realism1.png`` at realism 1) the file is decoded on ``--device`` and compared
with the pinned pixels: mean and largest absolute difference in 8-bit levels, against the
tolerance the golden tests allow across CPUs (mean ≤ 0.5, max ≤ 8). Then whole-process
decode times (``cgdm decode`` in a fresh process, as a user runs it) of a 768×512 and, unless
``--no-large``, a 6000×4000 file, each encoded here first at level 3 from a synthetic
photo-like image (decode time depends on the pixel count, not the content; the repo carries no
photos). Results go to ``OUT/gpu_check.json`` and a line per check on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
PINNED = {".full.png": 0.0, ".realism1.png": 1.0}
MEAN_TOLERANCE, MAX_TOLERANCE = 0.5, 8


def pinned_decodes() -> list[tuple[Path, Path, float]]:
    """(file, pinned PNG, realism) for every golden decode the tests pin."""
    out = []
    for png in sorted(GOLDEN.glob("*.png")):
        for suffix, realism in PINNED.items():
            if png.name.endswith(suffix):
                cgdm = GOLDEN / (png.name[: -len(suffix)] + ".cgdm")
                if cgdm.exists():
                    out.append((cgdm, png, realism))
    return out


def compare_golden(device: str, runtime: str) -> list[dict]:
    """Decode each pinned golden file on ``device`` and measure its distance to the pin."""
    from PIL import Image

    import cgdm_codec

    rows = []
    for cgdm, png, realism in pinned_decodes():
        want = np.asarray(Image.open(png).convert("RGB")).astype(int)
        t0 = time.perf_counter()
        try:
            got = np.asarray(cgdm_codec.decode(cgdm, realism=realism, device=device, runtime=runtime)
                             .convert("RGB")).astype(int)
        except Exception as e:  # a file this device cannot decode is a result, not a crash
            rows.append({"file": cgdm.name, "realism": realism, "error": f"{type(e).__name__}: {e}"})
            continue
        err = np.abs(got - want)
        rows.append({"file": cgdm.name, "realism": realism, "seconds": round(time.perf_counter() - t0, 3),
                     "mean_abs": round(float(err.mean()), 4), "max_abs": int(err.max()),
                     "within_tolerance": bool(err.mean() <= MEAN_TOLERANCE and err.max() <= MAX_TOLERANCE)})
    return rows


def synthetic_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth regions, edges and fine texture, so the encoder writes the diffusion stage."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 60 * np.sin(x / 97.0) * np.cos(y / 131.0)
    blocks = ((x // 173 + y // 151) % 2) * 40.0
    grain = rng.normal(0, 9, (height, width)).astype(np.float32)
    rgb = np.stack([base + blocks + grain, base * 0.8 + grain + 20, 200 - base * 0.5 + grain], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def timed_decode(cgdm: Path, out_png: Path, device: str, runtime: str, repeat: int) -> list[float]:
    """Whole-process ``cgdm decode`` wall times."""
    cmd = [sys.executable, "-m", "cgdm_codec.cli", "decode", str(cgdm), "-o", str(out_png), "-f", "-Q",
           "--device", device, "--runtime", runtime]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        times.append(round(time.perf_counter() - t0, 3))
    return times


def decode_times(work: Path, device: str, runtime: str, large: bool, repeat: int) -> list[dict]:
    from PIL import Image

    import cgdm_codec

    sizes = [(768, 512)] + ([(6000, 4000)] if large else [])
    rows = []
    for w, h in sizes:
        src = work / f"synthetic-{w}x{h}.png"
        Image.fromarray(synthetic_photo(w, h)).save(src, compress_level=1)
        cgdm = work / f"synthetic-{w}x{h}.cgdm"
        t0 = time.perf_counter()
        cgdm.write_bytes(cgdm_codec.encode(src, 3, diffusion=True, device=device, runtime=runtime))
        encode_s = time.perf_counter() - t0
        times = timed_decode(cgdm, work / f"synthetic-{w}x{h}.out.png", device, runtime, repeat)
        rows.append({"size": f"{w}x{h}", "bytes": cgdm.stat().st_size, "encode_s_in_process": round(encode_s, 3),
                     "decode_s_whole_process": times, "decode_s_median": float(np.median(times))})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--runtime", default=None, help="default: torch on cuda, auto elsewhere")
    ap.add_argument("--no-large", action="store_true", help="skip the 6000x4000 decode")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runtime = args.runtime or ("torch" if args.device == "cuda" else "auto")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": args.device, "runtime": runtime}
    if args.device == "cuda":
        import torch

        torch.backends.cudnn.benchmark = True
        report["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    report["golden"] = compare_golden(args.device, runtime)
    for row in report["golden"]:
        print(json.dumps(row))
    report["decode"] = decode_times(args.out, args.device, runtime, not args.no_large, args.repeat)
    for row in report["decode"]:
        print(json.dumps(row))
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    bad = [r["file"] for r in report["golden"] if not r.get("within_tolerance")]
    print(f"golden: {len(report['golden']) - len(bad)} of {len(report['golden'])} within tolerance"
          + (f"; outside: {', '.join(bad)}" if bad else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
