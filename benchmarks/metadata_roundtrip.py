"""Which metadata survive `cgdm encode` + `cgdm decode` into which output format.

Builds a small photo-like JPEG with an ICC profile, EXIF (IFD0, Exif and GPS directories)
and XMP, encodes it base-only (no weights needed with the AV1 base), decodes it into each
output format with ``imageio.save`` and reads the result back with Pillow. A second table
shows what a plain ``Image.save`` of ``cgdm_codec.decode()``'s image keeps (from ``im.info``).
Prints Markdown tables (the one in docs/format.md, section 3.6):

    python benchmarks/metadata_roundtrip.py
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

import cgdm_codec
from cgdm_codec import imageio, pipeline
from cgdm_codec.options import EncodeSettings

FORMATS = (".png", ".jpg", ".webp", ".tiff", ".avif", ".bmp", ".gif", ".ppm")
XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>cgdm</dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def source() -> bytes:
    """A 64x48 JPEG carrying an ICC profile, EXIF with sub-directories, and XMP."""
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).astype(np.uint8)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "CamCo", "Model 7"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"
    exif.get_ifd(0x8825)[1] = "N"
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=95, icc_profile=icc, exif=exif.tobytes(), xmp=XMP)
    return out.getvalue()


def tags(exif: bytes | None) -> dict:
    """Make, Model, DateTimeOriginal and GPS latitude ref: what a reader would show."""
    if not exif:
        return {}
    e = Image.Exif()
    e.load(exif)
    return {"make": e.get(0x010F), "model": e.get(0x0110),
            "date": e.get_ifd(0x8769).get(0x9003), "gps": e.get_ifd(0x8825).get(1)}


def verdict(name: str, got: bytes | None, want: bytes) -> str:
    if got is None:
        return "dropped"
    if got == want:
        return "verbatim"
    if name == "exif" and tags(got) == tags(want):
        return "tags kept (rewritten)"
    return f"changed ({len(got)} B)"


def main() -> None:
    src = imageio.from_pil(Image.open(io.BytesIO(source())))
    md = src.metadata
    assert md is not None and md.icc and md.exif and md.xmp
    data = pipeline.encode_image(src, EncodeSettings(quality=3, base_only=True, base="av1"))
    print(f"source: ICC {len(md.icc)} B, EXIF {len(md.exif)} B, XMP {len(md.xmp)} B; "
          f".cgdm {len(data)} B\n")
    rows, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for ext in FORMATS:
            im = cgdm_codec.decode(data, base_only=True)
            path = Path(tmp) / f"out{ext}"
            notes = imageio.save(im, path)
            with Image.open(path) as r:
                r.load()
                back = imageio.from_pil(r).metadata
            got = {n: getattr(back, n) if back else None for n in ("icc", "exif", "xmp")}
            rows.append([ext] + [verdict(n, got[n], getattr(md, n)) for n in got]
                        + ["; ".join(notes) or "-"])
            plain_path = Path(tmp) / f"plain{ext}"
            try:
                im.convert("RGB").save(plain_path) if ext in (".gif",) else im.save(plain_path)
                with Image.open(plain_path) as r:
                    r.load()
                    back = imageio.from_pil(r).metadata
                plain.append([ext] + [verdict(n, getattr(back, n) if back else None, getattr(md, n))
                                      for n in ("icc", "exif", "xmp")])
            except (OSError, ValueError) as e:
                plain.append([ext, f"error: {e}", "", ""])
    print("| output | ICC profile | EXIF | XMP | note from `cgdm decode` |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("\nplain `im.save(path)` of `cgdm_codec.decode()`'s image (metadata only in `im.info`):\n")
    print("| output | ICC profile | EXIF | XMP |")
    print("|---|---|---|---|")
    for r in plain:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
