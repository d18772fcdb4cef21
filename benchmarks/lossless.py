"""Sizes and times of ``cgdm encode --lossless`` against the lossless coders Pillow has.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/lossless.py ../shared/datasets/val/sunhays80 \\
        --limit 16 --gray 4 --out /tmp/lossless.json

Images: every k-th sunhays80 photo (sorted by name) halved (``--limit`` of them, RGB), the first
``--gray`` of those as L, and four synthetic pictures (flat colour, a gradient, a
screenshot-like picture with text, and its L version). Codecs, one thread each, in this process:
cgdm lossless at each effort; WebP lossless (``lossless=True, method=6``, Pillow's quality 80);
PNG (``optimize=True``); AVIF ``quality=100``, 4:4:4 (4:0:0 for L) at libavif's default speed 6,
which is what Pillow offers as AVIF lossless, with its largest error (Pillow fixes the matrix
to BT.601, so RGB is not exact); and the exact AV1 alternative cgdm did not take: three 4:0:0
AV1 ``quality=100`` planes of G, R - G + 128, B - G + 128 (mod 256). Every exact codec's
decode is checked against the input. Bytes are whole files (a .cgdm file with its framing).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

import cgdm_codec

Codec = Callable[[Image.Image], tuple[bytes, Callable[[bytes], np.ndarray]]]


def photos(folder: Path, limit: int) -> list[tuple[str, Image.Image]]:
    """``limit`` photos spread over the sorted folder, halved (LANCZOS) as in cgdm eval."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    step = max(1, len(paths) // limit)
    out = []
    for p in paths[::step][:limit]:
        im = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
        out.append((p.stem, im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)))
    return out


def synthetic() -> list[tuple[str, Image.Image]]:
    """Pictures unlike photos: what screenshots, diagrams and renders look like."""
    w, h = 512, 384
    flat = Image.new("RGB", (w, h), (40, 120, 200))
    yy, xx = np.mgrid[0:h, 0:w]
    gradient = Image.fromarray(np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1),
                                         (xx + yy) * 255 // (w + h - 2)], -1).astype(np.uint8))
    screen = Image.new("RGB", (w, h), (250, 250, 250))
    draw = ImageDraw.Draw(screen)
    draw.rectangle((0, 0, w, 28), fill=(45, 60, 90))
    draw.text((10, 8), "cgdm - lossless benchmark - File  Edit  View", fill=(255, 255, 255))
    for i in range(14):
        y = 40 + 24 * i
        draw.rectangle((10, y, 150, y + 18), fill=(220, 230, 245) if i % 2 else (235, 235, 235))
        draw.text((16, y + 4), f"item {i:02d}  size {1234 * (i + 1)} B", fill=(20, 20, 20))
        draw.text((170, y + 4), "The quick brown fox jumps over the lazy dog. 0123456789", fill=(30, 30, 160))
    draw.ellipse((380, 250, 500, 370), outline=(200, 30, 30), width=3)
    return [("flat", flat), ("gradient", gradient), ("screenshot", screen), ("screenshot-L", screen.convert("L"))]


def _pillow_decode(data: bytes, mode: str = "L") -> np.ndarray:
    """The decoded pixels in ``mode`` (WebP decodes gray as RGB: the conversion is exact)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert(mode))


def cgdm_lossless(effort: str) -> Codec:
    def code(im: Image.Image):
        return cgdm_codec.encode(im, lossless=True, effort=effort, threads=1), lambda d: np.asarray(cgdm_codec.decode(d))
    return code


def pillow(fmt: str, **options) -> Codec:
    def code(im: Image.Image):
        buf = io.BytesIO()
        im.save(buf, fmt, **options)
        return buf.getvalue(), lambda d: _pillow_decode(d, im.mode)
    return code


def avif_q100(im: Image.Image):
    """Pillow's nearest to AVIF lossless: quality 100, no chroma subsampling (BT.601 matrix)."""
    buf = io.BytesIO()
    im.save(buf, "AVIF", quality=100, speed=6, max_threads=1, subsampling="4:0:0" if im.mode == "L" else "4:4:4")
    return buf.getvalue(), lambda d: _pillow_decode(d, im.mode)


def _plane(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, "L").save(buf, "AVIF", quality=100, speed=6, max_threads=1)
    return buf.getvalue()


def av1_planes(im: Image.Image):
    """Exact AV1 through Pillow: 4:0:0 planes after a reversible subtract-green (mod 256)."""
    a = np.asarray(im).astype(np.int16)
    if im.mode == "L":
        return _plane(a.astype(np.uint8)), _pillow_decode
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    planes = [g, (r - g + 128) & 255, (b - g + 128) & 255]
    files = [_plane(p.astype(np.uint8)) for p in planes]
    sizes = [len(f) for f in files]

    def decode(data: bytes) -> np.ndarray:
        parts, start = [], 0
        for n in sizes:
            parts.append(_pillow_decode(data[start:start + n]).astype(np.int16))
            start += n
        g2, dr, db = parts
        return np.stack([(dr + g2 - 128) & 255, g2, (db + g2 - 128) & 255], -1).astype(np.uint8)

    return b"".join(files), decode


CODECS: dict[str, Codec] = {
    "cgdm --lossless": cgdm_lossless("default"),
    "cgdm --lossless --effort fast": cgdm_lossless("fast"),
    "cgdm --lossless --effort max": cgdm_lossless("max"),
    "WebP lossless (method 6)": pillow("WEBP", lossless=True, method=6),
    "PNG (optimize)": pillow("PNG", optimize=True),
    "AVIF q100 4:4:4 (L: 4:0:0)": avif_q100,
    "AV1 planes G,R-G,B-G (exact)": av1_planes,
}


def measure(name: str, im: Image.Image) -> dict:
    """One image through every codec: bytes, encode and decode seconds, largest error."""
    row = {"image": name, "mode": im.mode, "pixels": im.width * im.height}
    ref = np.asarray(im).astype(np.int16)
    for codec, code in CODECS.items():
        t0 = time.perf_counter()
        data, decode = code(im)
        t1 = time.perf_counter()
        out = decode(data)
        t2 = time.perf_counter()
        row[codec] = {"bytes": len(data), "encode_s": t1 - t0, "decode_s": t2 - t1,
                      "max_error": int(np.abs(out.astype(np.int16) - ref).max())}
    return row


def table(rows: list[dict], title: str) -> str:
    """Markdown: totals over ``rows`` per codec, bytes against WebP lossless."""
    if not rows:
        return ""
    pixels = sum(r["pixels"] for r in rows)
    webp = sum(r["WebP lossless (method 6)"]["bytes"] for r in rows)
    lines = [f"**{title}** ({len(rows)} images, {pixels / 1e6:.2f} MP)", "",
             "| codec | bytes | bpp | vs WebP | exact | encode s | decode s |", "|---|---:|---:|---:|---|---:|---:|"]
    for codec in CODECS:
        n = sum(r[codec]["bytes"] for r in rows)
        exact = max(r[codec]["max_error"] for r in rows)
        lines.append(f"| {codec} | {n} | {8 * n / pixels:.3f} | {100 * (n / webp - 1):+.1f} % | "
                     f"{'yes' if exact == 0 else f'no (max error {exact})'} | "
                     f"{sum(r[codec]['encode_s'] for r in rows):.2f} | {sum(r[codec]['decode_s'] for r in rows):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--limit", type=int, default=16, help="photos (RGB)")
    ap.add_argument("--gray", type=int, default=4, help="of those photos, also coded as L")
    ap.add_argument("--out", type=Path, default=None, help="per-image rows as JSON")
    args = ap.parse_args()
    pics = photos(args.images, args.limit)
    groups = {"sunhays80 photos, halved, RGB": [measure(n, im) for n, im in pics],
              "the same photos as L": [measure(n + "-L", im.convert("L")) for n, im in pics[:args.gray]],
              "synthetic (flat, gradient, screenshot, screenshot as L)": [measure(n, im) for n, im in synthetic()]}
    if args.out is not None:
        args.out.write_text(json.dumps(groups, indent=1))
    print("\n".join(table(rows, title) for title, rows in groups.items()))
    for row in groups["synthetic (flat, gradient, screenshot, screenshot as L)"]:
        print(row["image"], {c: row[c]["bytes"] for c in CODECS})


if __name__ == "__main__":
    main()
