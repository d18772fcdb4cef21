"""Crops people can look at: original | AVIF | cgdm at nearly equal bytes, side by side.

For each image: the reference (EXIF-oriented 8-bit RGB, Lanczos-downscaled as in
``cgdm eval``) is saved as PNG and put through the real command line, ``cgdm encode REF -q N
-o X.cgdm`` then ``cgdm decode X.cgdm -o X.png``. The AVIF anchor's quality is then chosen
by bisection so that its file is the closest in size to the .cgdm file (``match_bpp``).
A fixed 192x192 window with the most fine detail (``detail_box``) is cut from all three and
drawn (enlarged twice, nearest neighbour: ``--zoom``) with each file's codec, bytes and bpp
(``cgdm_lab.evaluation.crops.crop_grid``).

    .venv/bin/python benchmarks/crops.py ../shared/datasets/val/sunhays80 --limit 2 \\
        --downscale 0.5 -q 3 --effort fast --out runs/crops.png

Writes the PNG, and next to it a JSON file (same name, .json) with every file's size,
settings and crop window. Progress to stderr, one summary line per image to stdout.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cgdm_lab.evaluation.anchors import avif_anchor, bpp_of, cached, match_bpp  # noqa: E402
from cgdm_lab.evaluation.crops import CROP, codec_label, crop_grid, detail_box  # noqa: E402
from cgdm_lab.evaluation.images import (  # noqa: E402
    decode_pil_bytes, list_images, load_reference, to_rgb_array)

DEFAULT_IMAGES = REPO.parent / "shared" / "datasets" / "val" / "sunhays80"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cgdm_command() -> list[str]:
    """The ``cgdm`` next to this Python (the venv's), else the one on PATH."""
    here = Path(sys.executable).parent / "cgdm"
    if here.is_file():
        return [str(here)]
    found = shutil.which("cgdm")
    if found:
        return [found]
    return [sys.executable, "-m", "cgdm_codec.cli"]


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {shlex.join(cmd)}\n{res.stderr.strip()}")
    return time.perf_counter() - t0


def cgdm_roundtrip(ref_png: Path, work: Path, level: int, encode_args: list[str],
                   realism: float = 0.0) -> tuple[bytes, object, dict]:
    """Encode and decode with the real CLI; (the .cgdm bytes, the decoded RGB, timings)."""
    stem = ref_png.name.removesuffix(".ref.png")
    coded, decoded = work / f"{stem}.q{level}.cgdm", work / f"{stem}.q{level}.r{realism:g}.png"
    cgdm = cgdm_command()
    enc = [*cgdm, "encode", str(ref_png), "-q", str(level), "-o", str(coded), "-f", "-Q", *encode_args]
    dec = [*cgdm, "decode", str(coded), "-o", str(decoded), "-f", "-Q", "--realism", f"{realism:g}"]
    t_enc, t_dec = (run(enc) if not coded.exists() else 0.0), run(dec)
    info = json.loads(subprocess.run([*cgdm, "info", "--json", str(coded)], capture_output=True, text=True,
                                     check=True).stdout)
    from PIL import Image

    with Image.open(decoded) as im:
        out = to_rgb_array(im)
    return coded.read_bytes(), out, {"encode_command": shlex.join(enc), "encode_s": t_enc,
                                     "decode_command": shlex.join(dec), "decode_s": t_dec, "info": info}


def image_row(path: Path, work: Path, args: argparse.Namespace) -> tuple[list, tuple, dict]:
    img = load_reference(path, args.downscale)
    ref = to_rgb_array(img)
    w, h = img.size
    ref_png = work / f"{path.stem}.ref.png"
    img.save(ref_png)
    coded = work / f"{path.stem}.q{args.quality}.cgdm"
    coded.unlink(missing_ok=True)
    decodes = [cgdm_roundtrip(ref_png, work, args.quality, args.encode_args, r) for r in args.realism]
    data, ours, timing = decodes[0]
    target = bpp_of(len(data), w, h)
    avif = avif_anchor(args.avif_speed)
    q, avif_bytes = match_bpp(cached(lambda s: avif.encode(img, s)), avif.q_min, avif.q_max, target, w * h)
    (work / f"{path.stem}.q{q}.avif").write_bytes(avif_bytes)
    theirs = decode_pil_bytes(avif_bytes)
    box = detail_box(ref, CROP)
    row = [(ref, f"original {w}x{h}\ncrop {box[2] - box[0]}x{box[3] - box[1]} at ({box[0]}, {box[1]})"),
           (theirs, codec_label(f"AVIF q{q} speed {args.avif_speed}", len(avif_bytes), w, h)),
           *[(out, codec_label(f"cgdm -q {' '.join([str(args.quality), *args.encode_args])}"
                               + (f" --realism {r:g}" if len(args.realism) > 1 else "")
                               + ("" if timing["info"].get("diffusion") else " (base only)"), len(data), w, h))
             for r, (_, out, _) in zip(args.realism, decodes)]]
    record = {"image": path.name, "width": w, "height": h, "box": list(box),
              "cgdm": {"level": args.quality, "bytes": len(data), "bpp": target, **timing},
              "avif": {"quality": q, "speed": args.avif_speed, "bytes": len(avif_bytes),
                       "bpp": bpp_of(len(avif_bytes), w, h)}}
    return row, box, record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="*", type=Path, default=[DEFAULT_IMAGES],
                   help="image files, or one folder (its images by name)")
    p.add_argument("--limit", type=int, default=2, help="at most this many images")
    p.add_argument("--downscale", type=float, default=0.5)
    p.add_argument("-q", "--quality", type=int, default=3, help="cgdm quality level 1..6")
    p.add_argument("--avif-speed", type=int, default=6)
    p.add_argument("--effort", choices=["fast", "default", "max"], default=None,
                   help="cgdm encode --effort [default: the CLI's]")
    p.add_argument("--base-only", action="store_true", help="cgdm encode --base-only")
    p.add_argument("--texture-map", action="store_true", help="cgdm encode --texture-map")
    p.add_argument("--realism", type=float, nargs="*", default=[0.0],
                   help="decode the cgdm file at each of these realism settings (a column each)")
    p.add_argument("--zoom", type=int, default=2, help="enlarge the crops this many times (nearest)")
    p.add_argument("--keep", type=Path, default=None, help="keep the coded files in this folder")
    p.add_argument("--out", type=Path, default=Path("runs/crops.png"))
    args = p.parse_args(argv)
    args.encode_args = ((["--effort", args.effort] if args.effort else []) + (["--base-only"] if args.base_only else [])
                        + (["--texture-map"] if args.texture_map else []))
    files = (list_images(args.images[0]) if len(args.images) == 1 and args.images[0].is_dir()
             else list(args.images))[: args.limit]
    if not files:
        log("no images")
        return 1
    rows, boxes, records = [], [], []
    with tempfile.TemporaryDirectory(prefix="cgdm-crops-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for path in files:
            t0 = time.perf_counter()
            row, box, record = image_row(path, work, args)
            rows.append(row)
            boxes.append(box)
            records.append(record)
            c, a = record["cgdm"], record["avif"]
            log(f"{path.name}: {time.perf_counter() - t0:.1f} s")
            print(f"{path.name}: cgdm q{c['level']} {c['bytes']} B ({c['bpp']:.3f} bpp) | "
                  f"AVIF q{a['quality']} {a['bytes']} B ({a['bpp']:.3f} bpp) | crop {box}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    crop_grid(rows, boxes, zoom=args.zoom).save(args.out)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "images": records}, indent=1) + "\n")
    log(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
