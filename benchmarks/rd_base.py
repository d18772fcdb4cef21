"""Rate-distortion benchmark: cgdm against Pillow's JPEG, WebP and AVIF at matched bpp.

For every image and cgdm quality level the .cgdm file is made and decoded (base codec only,
and with ``--diffusion`` also the full decoder). Each classical codec is then run at the
quality setting whose file size is closest to the .cgdm file's (bisection over the codec's
quality parameter, per image and level), so all codecs are compared at the same bits per
pixel. All metrics are full-reference on 8-bit RGB (see ``cgdm_codec.metrics``).

    python benchmarks/rd_base.py --limit 2 --out runs/rd_base.json

Markdown goes to stdout, progress to stderr, and every row (plus per-level means) to --out.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import json
import math
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cgdm_codec import metrics  # noqa: E402

DEFAULT_IMAGES = REPO.parent / "shared" / "datasets" / "val" / "sunhays80"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}


# ------------------------------------------------------------------------- classical codecs


@dataclass(frozen=True)
class ClassicalCodec:
    """A Pillow format driven by one integer quality parameter (higher = more bytes)."""

    name: str
    pil_format: str
    q_min: int
    q_max: int
    options: tuple[tuple[str, object], ...] = ()

    def encode(self, img: Image.Image, q: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, self.pil_format, quality=q, **dict(self.options))
        return buf.getvalue()


JPEG = ClassicalCodec("jpeg", "JPEG", 1, 100, (("optimize", True), ("subsampling", "4:2:0")))
WEBP = ClassicalCodec("webp", "WEBP", 0, 100, (("method", 6),))
AVIF = ClassicalCodec("avif", "AVIF", 0, 100, (("speed", 6), ("subsampling", "4:2:0")))


def avif_support() -> str | None:
    """Where AVIF encoding comes from ("pillow" or "pillow-avif-plugin"), or None if absent."""
    Image.init()
    if "AVIF" in Image.SAVE:
        return "pillow"
    try:
        import pillow_avif  # noqa: F401  (registers the plugin)
    except ImportError:
        return None
    return "pillow-avif-plugin" if "AVIF" in Image.SAVE else None


def available_codecs(names: Iterable[str]) -> list[ClassicalCodec]:
    """The requested classical codecs that this Pillow can write; skipped ones are reported."""
    Image.init()
    known = {c.name: c for c in (JPEG, WEBP, AVIF)}
    out = []
    for name in names:
        codec = known[name]
        if name == "avif" and avif_support() is None:
            log("AVIF: no encoder (needs Pillow >= 11.2 built with libavif, or "
                "pillow-avif-plugin); skipping AVIF")
            continue
        if name == "webp" and "WEBP" not in Image.SAVE:
            log("WebP: Pillow was built without WebP; skipping WebP")
            continue
        out.append(codec)
    return out


def bpp_of(data: bytes, width: int, height: int) -> float:
    """Bits per pixel of a complete file."""
    return 8.0 * len(data) / (width * height)


def match_bpp(encode_at: Callable[[int], bytes], q_min: int, q_max: int, target: float,
              pixels: int) -> tuple[int, bytes]:
    """The quality setting (and its bytes) whose bpp is closest to ``target``.

    Bisection for the smallest setting reaching the target, assuming size grows with the
    setting, then the better of it and its lower neighbour. ``encode_at`` should cache.
    """
    def bpp(q: int) -> float:
        return 8.0 * len(encode_at(q)) / pixels

    lo, hi = q_min, q_max
    if bpp(hi) <= target:
        return hi, encode_at(hi)
    if bpp(lo) >= target:
        return lo, encode_at(lo)
    while hi - lo > 1:  # invariant: bpp(lo) < target <= bpp(hi)
        mid = (lo + hi) // 2
        if bpp(mid) < target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda q: (abs(bpp(q) - target), q))
    return best, encode_at(best)


def cached(fn: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """Memoise an encoder over its quality setting (bisections for several levels share it)."""
    store: dict[int, bytes] = {}

    def wrapper(q: int) -> bytes:
        if q not in store:
            store[q] = fn(q)
        return store[q]

    return wrapper


# ---------------------------------------------------------------------------------- rows


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) of any Pillow image (alpha dropped, grey expanded)."""
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_pil_bytes(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return to_rgb_array(im)


def quality_row(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """All metrics of a decoded image against the reference."""
    return {
        "psnr": metrics.psnr(ref, out),
        "ms_ssim": metrics.ms_ssim(ref, out),
        "haarpsi": metrics.haarpsi(ref, out),
    }


def load_reference(path: Path, downscale: float = 1.0) -> Image.Image:
    """The image as the codecs should see it: EXIF orientation applied, 8-bit RGB, and
    optionally downscaled (Lanczos), which hides the 8x8 grid of JPEG-compressed sources so
    that re-encoding with JPEG gets no head start from matching the original quantisation."""
    with Image.open(path) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    if downscale != 1.0:
        size = (max(1, round(img.width * downscale)), max(1, round(img.height * downscale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    return img


def list_images(folder: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit] if limit else files


def cgdm_rows(img: Image.Image, ref: np.ndarray, level: int, diffusion: bool,
              device: str) -> list[dict]:
    """Encode at one level, decode base-only (and fully), and score."""
    from cgdm_codec.pipeline import decode, encode

    w, h = img.size
    t0 = time.perf_counter()
    data = encode(img, level, device=device)
    t_enc = time.perf_counter() - t0
    modes = [("cgdm-base", True)] + ([("cgdm-diffusion", False)] if diffusion else [])
    rows = []
    for name, base_only in modes:
        t0 = time.perf_counter()
        out = to_rgb_array(decode(data, base_only=base_only, device=device))
        t_dec = time.perf_counter() - t0
        rows.append({"codec": name, "level": level, "setting": level, "bytes": len(data),
                     "bpp": bpp_of(data, w, h), "encode_s": t_enc, "decode_s": t_dec,
                     **quality_row(ref, out)})
    return rows


def classical_row(codec: ClassicalCodec, encode_at: Callable[[int], bytes], ref: np.ndarray,
                  level: int, target: float) -> dict:
    h, w = ref.shape[:2]
    q, data = match_bpp(encode_at, codec.q_min, codec.q_max, target, w * h)
    out = decode_pil_bytes(data)
    return {"codec": codec.name, "level": level, "setting": q, "bytes": len(data),
            "bpp": bpp_of(data, w, h), "target_bpp": target, **quality_row(ref, out)}


def image_rows(path: Path, levels: list[int], codecs: list[ClassicalCodec], diffusion: bool,
               device: str, downscale: float = 1.0) -> list[dict]:
    img = load_reference(path, downscale)
    ref = to_rgb_array(img)
    w, h = img.size
    encoders = {c.name: cached(lambda q, c=c: c.encode(img, q)) for c in codecs}
    rows: list[dict] = []
    for level in levels:
        ours = cgdm_rows(img, ref, level, diffusion, device)
        target = ours[0]["bpp"]
        level_rows = ours + [classical_row(c, encoders[c.name], ref, level, target)
                             for c in codecs]
        for r in level_rows:
            r.update(image=path.name, width=w, height=h)
        log(f"  {path.name} q={level}: " + " | ".join(
            f"{r['codec']} {r['bpp']:.3f}bpp {r['psnr']:.2f}dB {r['ms_ssim']:.4f} "
            f"{r['haarpsi']:.4f}" for r in level_rows))
        rows.extend(level_rows)
    return rows


# ------------------------------------------------------------------------------ summary

SUMMARY_KEYS = ("bpp", "psnr", "ms_ssim", "haarpsi")


def level_means(rows: list[dict]) -> list[dict]:
    """Per (codec, level): mean over images of bpp and of each metric."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["codec"], r["level"]), []).append(r)
    order = {"cgdm-base": 0, "cgdm-diffusion": 1, "jpeg": 2, "webp": 3, "avif": 4}
    out = []
    for (codec, level), rs in sorted(groups.items(), key=lambda kv: (kv[0][1],
                                                                      order.get(kv[0][0], 9))):
        entry = {"codec": codec, "level": level, "n": len(rs)}
        for k in SUMMARY_KEYS:
            entry[k] = float(np.mean([r[k] for r in rs]))
        out.append(entry)
    return out


def codec_settings(codecs: list[ClassicalCodec]) -> str:
    """One line naming each classical codec's searched range and fixed options."""
    parts = []
    for c in codecs:
        opts = ", ".join(f"{k}={v}" for k, v in c.options)
        parts.append(f"{c.name} (quality {c.q_min}..{c.q_max}; {opts})")
    return "; ".join(parts)


JPEG_SOURCE_NOTE = ("note: the sources are JPEG files used at full size; re-encoding them with "
                    "JPEG near their original quality is unfairly good (same 8x8 grid and "
                    "quantisation); use --downscale 0.5 for a fair JPEG comparison")


def markdown(means: list[dict], command: str, date: str, settings: str,
             notes: list[str]) -> str:
    lines = [
        "## cgdm rate-distortion vs JPEG / WebP / AVIF (matched bpp per image)",
        "",
        f"- command: `{command}`",
        f"- date: {date}",
        "- metrics: PSNR (RGB, 8-bit peak), MS-SSIM (RGB channels averaged), HaarPSI (YIQ); "
        "means over images",
        f"- classical codecs (Pillow): {settings}",
        *(f"- {n}" for n in notes),
        "",
        "| level | codec | n | bpp | PSNR (dB) | MS-SSIM | HaarPSI |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for m in means:
        lines.append(f"| {m['level']} | {m['codec']} | {m['n']} | {m['bpp']:.4f} | "
                     f"{m['psnr']:.2f} | {m['ms_ssim']:.4f} | {m['haarpsi']:.4f} |")
    return "\n".join(lines)


def environment(device: str) -> dict:
    import PIL
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "pillow": PIL.__version__, "threads": torch.get_num_threads(), "device": device,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "avif": avif_support(), "machine": platform.machine()}


def json_safe(x: object) -> object:
    """inf PSNR (identical images) is written as null: JSON has no infinity."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_safe(v) for v in x]
    return x


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(json_safe(payload), indent=1) + "\n")
    tmp.replace(path)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of images")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("-q", "--quality", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6],
                   help="cgdm quality levels (1..6)")
    p.add_argument("--codecs", nargs="+", default=["jpeg", "webp", "avif"],
                   choices=["jpeg", "webp", "avif"], help="classical codecs to compare")
    p.add_argument("--downscale", type=float, default=1.0,
                   help="resize every image by this factor first (e.g. 0.5 for JPEG sources)")
    p.add_argument("--diffusion", action="store_true", help="also score the full decoder")
    p.add_argument("--device", default="auto", help="cgdm device: auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "rd_base.json",
                   help="JSON output path")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    files = list_images(args.images, args.limit)
    if not files:
        log(f"no images in {args.images}")
        return 1
    codecs = available_codecs(args.codecs)
    jpeg_sources = any(p.suffix.lower() in {".jpg", ".jpeg"} for p in files)
    notes = [JPEG_SOURCE_NOTE] if jpeg_sources and args.downscale == 1.0 else []
    for n in notes:
        log(n)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    date = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    payload = {"command": command, "date": date, "images": str(args.images),
               "levels": args.quality, "diffusion": args.diffusion,
               "downscale": args.downscale, "notes": notes,
               "codecs": {c.name: asdict(c) for c in codecs},
               "environment": environment(args.device), "rows": [], "means": []}
    started = time.perf_counter()
    for i, path in enumerate(files, 1):
        log(f"[{i}/{len(files)}] {path.name}  ({time.perf_counter() - started:.0f}s)")
        payload["rows"].extend(image_rows(path, args.quality, codecs, args.diffusion,
                                          args.device, args.downscale))
        payload["means"] = level_means(payload["rows"])
        write_json(args.out, payload)
    print(markdown(payload["means"], command, date, codec_settings(codecs), notes))
    log(f"wrote {args.out} ({len(payload['rows'])} rows, {time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
