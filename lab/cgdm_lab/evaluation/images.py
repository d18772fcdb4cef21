"""The reference images as the codecs see them, and decoding anchor bytes back to pixels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}

JPEG_SOURCE_NOTE = ("the sources are JPEG files used at full size; re-encoding them with JPEG "
                    "near their original quality is unfairly good (same 8x8 grid and "
                    "quantisation); use --downscale 0.5 for a fair JPEG comparison")


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files directly in ``folder`` (by extension), sorted by name, at most ``limit``."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit] if limit else files


def has_jpeg_sources(files: list[Path]) -> bool:
    return any(p.suffix.lower() in {".jpg", ".jpeg"} for p in files)


def load_reference(path: Path, downscale: float = 1.0) -> Image.Image:
    """The image as every codec gets it: EXIF orientation applied, 8-bit RGB, optionally
    downscaled (Lanczos). Halving JPEG-compressed sources hides their 8x8 grid, so that
    re-encoding with JPEG gets no head start from matching the original quantisation.
    Its ICC profile, EXIF and XMP are dropped: they would add the same bytes to every file
    that can hold them (cgdm's included) and say nothing about compression."""
    with Image.open(path) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    img.info = {}
    if downscale != 1.0:
        size = (max(1, round(img.width * downscale)), max(1, round(img.height * downscale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    return img


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) of any Pillow image (alpha dropped, grey expanded)."""
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_pil_bytes(data: bytes) -> np.ndarray:
    """Decode a complete JPEG/WebP/AVIF/... file to uint8 RGB."""
    with Image.open(io.BytesIO(data)) as im:
        return to_rgb_array(im)
