"""Reading images into the codec's RGB(+alpha) form and writing decoded images.

Everything a user can feed in is mapped deliberately onto 8-bit RGB plus an optional alpha
plane: EXIF orientation is applied, grayscale is remembered (and restored on decode), alpha is
kept (coded losslessly beside the image), and 16-bit samples are reduced to 8 bits with a note.
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .atomic import OutputExistsError, write_with
from .container import ColourMode, FormatError, Limits
from .errors import ImageError


@dataclass
class CodecImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    mode: ColourMode
    alpha: np.ndarray | None = None  # (H, W) uint8 when mode has alpha
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def check_size(width: int, height: int, limits: Limits | None = None) -> None:
    """Refuse an image before its pixels are decoded (limits default to the environment's)."""
    if width < 1 or height < 1:
        raise ImageError(f"image has no pixels ({width}x{height})")
    try:
        (Limits.from_env() if limits is None else limits).check(width, height)
    except FormatError as e:
        raise ImageError(str(e)) from None


def _to_8bit(a: np.ndarray, notes: list[str]) -> np.ndarray:
    """Scale high-bit-depth samples to 8 bits (rounding), noting it for the user."""
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        peak = 1.0 if float(np.nanmax(a, initial=0.0)) <= 1.0 else 255.0
        notes.append("floating-point input converted to 8 bits per channel")
        return np.clip(np.nan_to_num(a) * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
    a = a.astype(np.int64)
    if int(a.max(initial=0)) <= 255 and int(a.min(initial=0)) >= 0:
        return a.astype(np.uint8)
    notes.append("16-bit input reduced to 8 bits per channel")
    return np.clip((np.clip(a, 0, 65535) * 255 + 32767) // 65535, 0, 255).astype(np.uint8)


def from_pil(im, limits: Limits | None = None) -> CodecImage:
    """Map any Pillow image onto the codec's RGB + optional alpha form."""
    from PIL import ImageOps

    check_size(*im.size, limits=limits)
    im = ImageOps.exif_transpose(im)
    notes: list[str] = []
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("RGBa", "La"):
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"

    alpha = None
    if mode in ("RGBA", "LA"):
        arr = np.asarray(im)
        alpha = arr[..., -1].copy()
        colour = arr[..., :-1]
        is_gray = mode == "LA"
    elif mode == "RGB":
        colour, is_gray = np.asarray(im), False
    elif mode == "L" or mode.startswith("I") or mode == "F":
        colour, is_gray = _to_8bit(np.asarray(im), notes), True
    else:
        raise ImageError(f"unsupported image mode {mode}")

    if is_gray:
        gray = colour if colour.ndim == 2 else colour[..., 0]
        rgb = np.repeat(gray[..., None], 3, axis=2)
    else:
        rgb = colour
    if alpha is not None and int(alpha.min()) == 255:
        alpha = None  # fully opaque: nothing to keep
    if alpha is not None:
        cmode = ColourMode.LA if is_gray else ColourMode.RGBA
        notes.append("alpha channel kept (coded losslessly)")
    else:
        cmode = ColourMode.L if is_gray else ColourMode.RGB
    return CodecImage(np.ascontiguousarray(rgb, dtype=np.uint8), cmode, alpha, notes)


def load(path: str | Path, limits: Limits | None = None) -> CodecImage:
    """Read an image file, refusing oversized ones from their header, before decoding."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    return _load(path, str(path), limits)


def load_bytes(data: bytes, limits: Limits | None = None, name: str = "standard input") -> CodecImage:
    """Read an image from memory (a pipe), with the same checks as :func:`load`."""
    return _load(io.BytesIO(data), name, limits)


def _load(source: Path | BinaryIO, name: str, limits: Limits | None) -> CodecImage:
    """Pillow's own decompression-bomb guard (which trips at twice ``Image.MAX_IMAGE_PIXELS``,
    on open) also ends in an ``ImageError`` naming cgdm's limit."""
    from PIL import Image, UnidentifiedImageError

    limits = Limits.from_env() if limits is None else limits
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                check_size(*im.size, limits=limits)  # before decoding any pixel data
                im.load()
                return from_pil(im, limits)
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: image is too large ({e}); cgdm handles up to "
                         f"{limits.max_side} px per side and {limits.max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: not a readable image ({e})") from None


def to_pil(rgb: np.ndarray, mode: ColourMode, alpha: np.ndarray | None):
    return finish(rgb_image(rgb), mode, None if alpha is None else np.ascontiguousarray(alpha).tobytes())


def rgb_image(rgb: "np.ndarray"):
    """(H, W, 3) uint8 -> a Pillow RGB image."""
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


def finish(im, mode: ColourMode, alpha: bytes | None):
    """The decoded picture in the file's colour mode, with its alpha plane (row-major bytes)."""
    from PIL import Image

    want = "L" if mode in (ColourMode.L, ColourMode.LA) else "RGB"
    if im.mode != want:
        im = im.convert(want)
    if alpha is not None:
        im.putalpha(Image.frombytes("L", im.size, alpha))
    return im


def encode_alpha(alpha: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(alpha, dtype=np.uint8).tobytes(), 9)


def inflate_alpha(data: bytes, width: int, height: int) -> bytes:
    """Inflate with a hard output limit, so a hostile section cannot balloon memory."""
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data, width * height + 1)
    except zlib.error:
        raise ImageError("alpha section is corrupted") from None
    if len(raw) != width * height or d.unconsumed_tail or not d.eof:
        raise ImageError("alpha section has the wrong size")
    return raw


def decode_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    return np.frombuffer(inflate_alpha(data, width, height), dtype=np.uint8).reshape(height, width)


_NO_ALPHA_FORMATS = {"JPEG", "BMP", "PPM"}


def format_for(ext: str) -> str:
    """Pillow's format name for a file extension ("png", ".JPG", ...); ImageError if none."""
    from PIL import Image

    ext = "." + ext.lower().lstrip(".")
    fmt = Image.EXTENSION.get(ext)
    if fmt is None:  # the common formats register on preinit; the rest on init
        Image.init()
        fmt = Image.EXTENSION.get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(f"unknown output format '{ext if ext != '.' else '(none)'}'; use e.g. .png")
    return fmt


def write_image(im, f: BinaryIO, fmt: str, name: str = "output") -> list[str]:
    """Encode ``im`` into the open file ``f`` as ``fmt``; returns notes for the user."""
    notes = []
    if fmt in _NO_ALPHA_FORMATS and im.mode in ("RGBA", "LA"):
        notes.append(f"{fmt} cannot store alpha: alpha dropped in {name}")
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
    im.save(f, format=fmt)
    return notes


def save(im, path: str | Path, overwrite: bool = True) -> list[str]:
    """Write atomically in the format the extension names; returns notes for the user.

    With ``overwrite`` False an existing file is left alone (``OutputExistsError``).
    """
    path = Path(path)
    try:
        fmt = format_for(path.suffix or ".")
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ImageError(f"{path}: folder {directory} does not exist")
    notes: list[str] = []
    try:
        write_with(path, lambda f: notes.extend(write_image(im, f, fmt, path.name)), overwrite,
                   suffix=path.suffix.lower())
    except OutputExistsError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise ImageError(f"{path}: cannot write ({e})") from None
    return notes
