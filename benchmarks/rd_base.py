"""Rate-distortion benchmark: cgdm against Pillow's JPEG, WebP and AVIF at matched bpp.

For every image and cgdm quality level the .cgdm file is made and decoded (base codec only,
and with ``--diffusion`` also the full decoder). Each classical codec is then run at the
quality setting whose file size is closest to the .cgdm file's (bisection over the codec's
quality parameter, per image and level), so all codecs are compared at the same bits per
pixel. All metrics are full-reference on 8-bit RGB (see ``cgdm_codec.quality``).

    python benchmarks/rd_base.py --limit 2 --out runs/rd_base.json

Markdown goes to stdout, progress to stderr, and every row (plus per-level means) to --out.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cgdm_codec import quality  # noqa: E402
from cgdm_lab.evaluation.anchors import (  # noqa: E402
    ALL, ClassicalCodec, available_anchors, avif_support, bpp_of, cached, match_bpp)
from cgdm_lab.evaluation.images import (  # noqa: E402
    JPEG_SOURCE_NOTE, decode_pil_bytes, has_jpeg_sources, list_images, load_reference,
    to_rgb_array)
from cgdm_lab.evaluation.store import json_safe  # noqa: E402

DEFAULT_IMAGES = REPO.parent / "shared" / "datasets" / "val" / "sunhays80"


def quality_row(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """All metrics of a decoded image against the reference."""
    return {
        "psnr": quality.psnr(ref, out),
        "ms_ssim": quality.ms_ssim(ref, out),
        "haarpsi": quality.haarpsi(ref, out),
    }


def cgdm_rows(img: Image.Image, ref: np.ndarray, level: int, diffusion: bool,
              device: str) -> list[dict]:
    """Encode at one level, decode base-only (and fully), and score."""
    from cgdm_codec import decode, encode

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
                     "bpp": bpp_of(len(data), w, h), "encode_s": t_enc, "decode_s": t_dec,
                     **quality_row(ref, out)})
    return rows


def classical_row(codec: ClassicalCodec, encode_at: Callable[[int], bytes], ref: np.ndarray,
                  level: int, target: float) -> dict:
    h, w = ref.shape[:2]
    q, data = match_bpp(encode_at, codec.q_min, codec.q_max, target, w * h)
    out = decode_pil_bytes(data)
    return {"codec": codec.name, "level": level, "setting": q, "bytes": len(data),
            "bpp": bpp_of(len(data), w, h), "target_bpp": target, **quality_row(ref, out)}


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
                   choices=[c.name for c in ALL], help="classical codecs to compare")
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
    codecs, skipped = available_anchors(args.codecs)
    for n in skipped:
        log(n)
    notes = [f"note: {JPEG_SOURCE_NOTE}"] if has_jpeg_sources(files) and args.downscale == 1.0 else []
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
