"""Side-by-side crops for looking at codecs: the same detailed region of the original and of
each decode, one row per image, each crop labelled (codec, bytes, bpp).

Pure image work on already-decoded pixels (``benchmarks/crops.py`` makes the decodes):
``detail_box`` picks the region, ``crop_grid`` draws the picture.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cgdm_codec.artefacts import luma
from .anchors import bpp_of

CROP = 192        # side of the square crop, in source pixels
GAP = 6           # white margin between and around crops
PAD = 4           # margin of the text inside its label strip
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)

Box = tuple[int, int, int, int]  # left, top, right, bottom (Pillow's order)


def detail_box(img: np.ndarray | Image.Image, size: int = CROP, step: int = 8) -> Box:
    """The ``size`` x ``size`` window (clipped to the image) with the most fine detail.

    Detail is the local variance of luma at the finest scale: the mean squared difference
    between neighbouring pixels (horizontal and vertical) inside the window. Unlike the
    window's plain variance it is not drawn to one big edge (a roof against the sky) but to
    texture, where codecs differ. Windows are tried every ``step`` pixels (plus the last
    position on each axis) using an integral image; ties go to the top-left-most."""
    y = _luma(img)
    h, w = y.shape
    sh, sw = min(size, h), min(size, w)
    energy = np.zeros((h, w))
    energy[:, :-1] += np.diff(y, axis=1) ** 2
    energy[:-1, :] += np.diff(y, axis=0) ** 2
    ii = np.zeros((h + 1, w + 1))
    ii[1:, 1:] = energy.cumsum(0).cumsum(1)
    tops = np.array(sorted(set(range(0, h - sh + 1, step)) | {h - sh}))
    lefts = np.array(sorted(set(range(0, w - sw + 1, step)) | {w - sw}))
    t, l = np.meshgrid(tops, lefts, indexing="ij")
    total = ii[t + sh, l + sw] - ii[t, l + sw] - ii[t + sh, l] + ii[t, l]
    i, j = np.unravel_index(int(np.argmax(total)), total.shape)
    top, left = int(tops[i]), int(lefts[j])
    return left, top, left + sw, top + sh


def _luma(img: np.ndarray | Image.Image) -> np.ndarray:
    a = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img, dtype=np.float64)
    return a if a.ndim == 2 else luma(a)


def codec_label(codec: str, n_bytes: int, width: int, height: int) -> str:
    """Two lines: the codec, then the whole file's size in bytes and bits per pixel."""
    return f"{codec}\n{n_bytes:,} B, {bpp_of(n_bytes, width, height):.3f} bpp"


def _font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _as_image(x: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(x, Image.Image):
        return x.convert("RGB")
    return Image.fromarray(np.asarray(x, dtype=np.uint8)).convert("RGB")


def label_size(labels: Sequence[str], font=None) -> tuple[int, int]:
    """(width, height) of the label strip that fits the widest and the tallest of ``labels``."""
    font = font or _font()
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [draw.multiline_textbbox((0, 0), s or " ", font=font) for s in labels]
    return (max((b[2] for b in boxes), default=0) + 2 * PAD,
            max((b[3] for b in boxes), default=0) + 2 * PAD)


def label_height(labels: Sequence[str], font=None) -> int:
    """Height of the label strip that fits the tallest of ``labels``."""
    return label_size(labels, font)[1]


def crop_grid(rows: Sequence[Sequence[tuple[np.ndarray | Image.Image, str]]],
              boxes: Sequence[Box | None] | None = None, size: int = CROP, zoom: int = 1) -> Image.Image:
    """One picture: a row per image, a column per panel ((pixels, label) pairs, e.g.
    original | AVIF | cgdm, all the same size within a row), each the crop ``boxes[i]``
    (None: ``detail_box`` of the row's first panel) enlarged ``zoom`` times without
    smoothing, with its label in a white strip beneath (cells widen to fit long labels)."""
    if not rows or any(not r for r in rows):
        raise ValueError("crop_grid needs at least one row of at least one panel")
    font = _font()
    text_w, strip = label_size([lab for r in rows for _, lab in r], font)
    crops: list[list[tuple[Image.Image, str]]] = []
    for i, row in enumerate(rows):
        images = [_as_image(px) for px, _ in row]
        if len({im.size for im in images}) != 1:
            raise ValueError(f"row {i}: panels differ in size {[im.size for im in images]}")
        box = boxes[i] if boxes is not None and boxes[i] is not None else detail_box(images[0], size)
        crops.append([(im.crop(box).resize(((box[2] - box[0]) * zoom, (box[3] - box[1]) * zoom),
                                           Image.Resampling.NEAREST), lab)
                      for im, (_, lab) in zip(images, row)])
    cols = max(len(r) for r in crops)
    cell_w = max(max(c.width for r in crops for c, _ in r), text_w)  # a long label widens the cells
    cell_h = [max(c.height for c, _ in r) + strip for r in crops]
    out = Image.new("RGB", (cols * cell_w + (cols + 1) * GAP, sum(cell_h) + (len(crops) + 1) * GAP), BACKGROUND)
    draw = ImageDraw.Draw(out)
    y = GAP
    for r, h in zip(crops, cell_h):
        for j, (c, lab) in enumerate(r):
            x = GAP + j * (cell_w + GAP)
            out.paste(c, (x, y))
            draw.multiline_text((x + PAD, y + c.height + PAD), lab, fill=INK, font=font)
        y += h + GAP
    return out
