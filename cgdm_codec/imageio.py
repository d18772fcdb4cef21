"""Reading images into the codec's RGB(+alpha) form and writing decoded images.

Everything a user can feed in is mapped deliberately onto 8-bit RGB plus an optional alpha
plane: EXIF orientation is applied, grayscale is remembered (and restored on decode), alpha is
kept (coded losslessly beside the image), and 16-bit samples are reduced to 8 bits with a note.
The ICC profile, EXIF and XMP are carried along untouched (no colour management: the pixels
are coded as their RGB numbers) and written back into outputs that can hold them.
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .atomic import OutputExistsError, write_with
from .container import (MAX_METADATA_RECORD_BYTES, METADATA_KINDS, ColourMode, ConfigError,
                        FormatError, Limits, Metadata)
from .errors import ImageError

if TYPE_CHECKING:  # numpy loads where pixels become arrays; a base-only AV1 decode never does
    import numpy as np


@dataclass
class CodecImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    mode: ColourMode
    alpha: np.ndarray | None = None  # (H, W) uint8 when mode has alpha
    notes: list[str] = field(default_factory=list)
    metadata: Metadata | None = None  # ICC profile, EXIF (orientation 1 or none), XMP
    #: why ``rgb``/``alpha`` are not the input's own numbers (16 bits or floats reduced, CMYK
    #: converted...), or None: a lossless encode refuses what it could not give back
    inexact: str | None = None

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
    import numpy as np

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


EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_LABELS = {"icc": "ICC profile", "exif": "EXIF", "xmp": "XMP"}


def _canonical_exif(raw: bytes, notes: list[str]) -> bytes | None:
    """The container's EXIF form (TIFF structure, no ``Exif\\0\\0``), orientation 1 or absent.

    Called after the orientation was applied to the pixels, so a remaining tag other than
    1 (Pillow leaves out-of-range values such as 0 or 9 alone) would rotate them twice.
    """
    from PIL import Image

    if raw.startswith(EXIF_PREFIX):
        raw = raw[len(EXIF_PREFIX):]
    if raw[:4] not in (b"II*\x00", b"MM\x00*"):
        notes.append("EXIF block is not a TIFF structure: dropped")
        return None
    try:
        exif = Image.Exif()
        exif.load(raw)
        orientation = exif.get(_ORIENTATION)
    except Exception:  # Pillow raises assorted errors on a damaged IFD
        notes.append("EXIF block is unreadable: dropped")
        return None
    if orientation not in (None, 1):
        del exif[_ORIENTATION]
        raw = exif.tobytes()[len(EXIF_PREFIX):]
    return raw


#: The descriptive tags of a TIFF's own directory that are EXIF (description, make, model,
#: software, date, artist, copyright), and its Exif and GPS sub-directories.
_TIFF_EXIF_TAGS = (270, 271, 272, 305, 306, 315, 33432)
_TIFF_EXIF_IFDS = (0x8769, 0x8825)


def _exif_from_tiff(im) -> bytes | None:
    """A TIFF keeps EXIF as tags of its own image directory: gather the descriptive ones
    (never the layout tags, which describe the TIFF's strips, not the image)."""
    from PIL import Image

    try:
        src = im.getexif()
        out = Image.Exif()
        found = False
        for tag in _TIFF_EXIF_TAGS:
            if tag in src:
                out[tag], found = src[tag], True
        for tag in _TIFF_EXIF_IFDS:
            sub = src.get_ifd(tag)
            if sub:
                out.get_ifd(tag).update(sub)
                found = True
        return out.tobytes()[len(EXIF_PREFIX):] if found else None
    except Exception:  # a damaged directory: no EXIF rather than no image
        return None


def _icc_fits(icc: bytes, gray: bool, source_mode: str, notes: list[str]) -> bool:
    """An ICC profile is kept only if it describes the pixels coded (RGB, or gray for L)."""
    space = icc[16:20] if len(icc) >= 128 else b""
    if space == (b"GRAY" if gray else b"RGB "):
        return True
    what = space.decode("latin-1").strip() or "malformed"
    notes.append(f"ICC profile ({what}) does not describe the {'gray' if gray else 'RGB'} pixels "
                 f"coded from a {source_mode} image: dropped")
    return False


def metadata_from_info(info: dict, gray: bool = False, source_mode: str = "RGB",
                       notes: list[str] | None = None) -> Metadata | None:
    """ICC profile, EXIF and XMP from a Pillow ``info`` dict, in the container's form.

    Pillow puts XMP under ``xmp`` (JPEG, WebP, AVIF, TIFF, PNG) or, for PNG's iTXt chunk,
    ``XML:com.adobe.xmp`` (a str). Fields the container cannot hold are dropped with a note.
    """
    notes = [] if notes is None else notes
    icc = info.get("icc_profile") or None
    exif = info.get("exif") or None
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    values = {}
    for name, value in (("icc", icc), ("exif", exif), ("xmp", xmp)):
        if not isinstance(value, (bytes, bytearray)):
            continue
        value = bytes(value)
        if len(value) > MAX_METADATA_RECORD_BYTES:
            notes.append(f"{_LABELS[name]} ({len(value)} bytes) exceeds the "
                         f"{MAX_METADATA_RECORD_BYTES >> 20} MiB limit: dropped")
            continue
        if name == "icc" and not _icc_fits(value, gray, source_mode, notes):
            continue
        if name == "exif" and (value := _canonical_exif(value, notes)) is None:
            continue
        values[name] = value
    md = Metadata(**values)
    return md if md else None


def select_metadata(md: Metadata | None, spec: str) -> Metadata | None:
    """Keep the fields ``spec`` names: ``all``, ``none`` or a comma list of icc, exif, xmp."""
    words = {w.strip().lower() for w in spec.split(",") if w.strip()}
    known = set(METADATA_KINDS.values())
    if words == {"all"}:
        words = known
    elif words == {"none"}:
        words = set()
    elif not words or not words <= known:
        raise ConfigError(f"--metadata {spec!r}: use all, none or a comma list of icc, exif, xmp")
    if md is None:
        return None
    kept = Metadata(**{n: v for n, v in md.items() if n in words})
    return kept if kept else None


def from_pil(im, limits: Limits | None = None) -> CodecImage:
    """Map any Pillow image onto the codec's RGB + optional alpha form (metadata included)."""
    import numpy as np
    from PIL import ImageOps

    check_size(*im.size, limits=limits)
    tiff_exif = _exif_from_tiff(im) if im.format == "TIFF" and "exif" not in im.info else None
    im = ImageOps.exif_transpose(im)  # also drops the orientation from its EXIF and XMP
    notes: list[str] = []
    source_mode, info = im.mode, dict(im.info)
    if tiff_exif is not None:
        info["exif"] = tiff_exif
    mode = im.mode
    inexact = None
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("RGBa", "La"):
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
        inexact = f"premultiplied {mode} input converted to straight alpha"
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
        inexact = f"{mode} input converted to RGB"
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
        before = len(notes)
        colour, is_gray = _to_8bit(np.asarray(im), notes), True
        inexact = notes[-1] if len(notes) > before else inexact
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
    else:
        cmode = ColourMode.L if is_gray else ColourMode.RGB
    metadata = metadata_from_info(info, is_gray, source_mode, notes)
    return CodecImage(np.ascontiguousarray(rgb, dtype=np.uint8), cmode, alpha, notes, metadata, inexact)


#: The one wording of a missing input, in every command and the API (the operating system's).
NO_SUCH_FILE = "No such file or directory"


def load(path: str | Path, limits: Limits | None = None) -> CodecImage:
    """Read an image file, refusing oversized ones from their header, before decoding.

    The file is read through a file object, never memory-mapped: Pillow maps uncompressed
    files (PGM, BMP, raw TIFF...) it opens by name, and a mapped file that another process
    truncates meanwhile kills this one with SIGBUS instead of an error.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: {NO_SUCH_FILE}")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise ImageError(f"{path}: {e.strerror or e}") from None
    with fh:
        return _load(fh, str(path), limits)


def load_bytes(data: bytes, limits: Limits | None = None, name: str = "standard input") -> CodecImage:
    """Read an image from memory (a pipe), with the same checks as :func:`load`."""
    return _load(io.BytesIO(data), f"{name} ({len(data)} bytes)", limits)


def _frames(im) -> int:
    """How many frames (GIF, APNG, WebP) or pages (TIFF) the file holds; 1 if Pillow cannot tell."""
    try:
        n = int(getattr(im, "n_frames", 1))
    except Exception:  # a damaged later frame: the first one may still be fine
        return 1
    if n > 1:
        im.seek(0)
    return n


def _source_bits(im) -> int:
    """Bits per sample of the file, where Pillow reads more than 8 into an 8-bit mode: a 48-bit
    RGB PNG opens as mode RGB with the raw mode ``RGB;16B`` (16-bit gray, mode I;16, says so itself)."""
    if im.mode not in ("RGB", "RGBA"):
        return 8
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        raw = args[0] if isinstance(args, tuple) and args else args
        if isinstance(raw, str) and ";16" in raw:
            return 16
    return 8


def _load(source: BinaryIO, name: str, limits: Limits | None) -> CodecImage:
    """Pillow's own decompression-bomb guard (which trips at twice ``Image.MAX_IMAGE_PIXELS``,
    on open) also ends in an ``ImageError`` naming cgdm's limit."""
    from PIL import Image, UnidentifiedImageError

    limits = Limits.from_env() if limits is None else limits
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                check_size(*im.size, limits=limits)  # before decoding any pixel data
                frames = _frames(im)
                bits = _source_bits(im)
                im.load()
                img = from_pil(im, limits)
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: image is too large ({e}); cgdm handles up to "
                         f"{limits.max_side} px per side and {limits.max_pixels} pixels") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a readable image (not in a format Pillow reads)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: not a readable image ({e})") from None
    if frames > 1:
        img.notes.insert(0, f"{frames} frames (an animation or a multi-page file): only the first is coded")
    if bits > 8:
        img.notes.insert(0, f"{bits}-bit input reduced to 8 bits per channel")
        img.inexact = img.notes[0]
    return img


def to_pil(rgb: np.ndarray, mode: ColourMode, alpha: np.ndarray | None,
           metadata: Metadata | None = None):
    """A Pillow image of the decoded pixels, the metadata in ``im.info`` where Pillow's
    readers put it (``icc_profile``, ``exif`` with the ``Exif\\0\\0`` prefix, ``xmp``)."""
    import numpy as np

    return finish(rgb_image(rgb), mode, None if alpha is None else np.ascontiguousarray(alpha).tobytes(),
                  metadata)


def rgb_image(rgb: "np.ndarray"):
    """(H, W, 3) uint8 -> a Pillow RGB image."""
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


def finish(im, mode: ColourMode, alpha: bytes | None, metadata: Metadata | None = None):
    """The decoded picture in the file's colour mode, with its alpha plane (row-major bytes)
    and the file's metadata in ``im.info`` (see :func:`to_pil`)."""
    from PIL import Image

    want = "L" if mode in (ColourMode.L, ColourMode.LA) else "RGB"
    if im.mode != want:
        im = im.convert(want)
    for key in ("icc_profile", "exif", "xmp"):  # only what the .cgdm file says
        im.info.pop(key, None)
    if alpha is not None:
        im.putalpha(Image.frombytes("L", im.size, alpha))
    if metadata is not None:
        if metadata.icc is not None:
            im.info["icc_profile"] = metadata.icc
        if metadata.exif is not None:
            im.info["exif"] = EXIF_PREFIX + metadata.exif
        if metadata.xmp is not None:
            im.info["xmp"] = metadata.xmp
    return im


def encode_alpha(alpha: np.ndarray) -> bytes:
    import numpy as np

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
    import numpy as np

    return np.frombuffer(inflate_alpha(data, width, height), dtype=np.uint8).reshape(height, width)


_NO_ALPHA_FORMATS = {"JPEG", "BMP", "PPM"}
#: Which metadata each output format gets from :func:`save` (measured with Pillow 13:
#: ``benchmarks/metadata_roundtrip.py``). Everything else drops all three, with a note.
METADATA_FORMATS: dict[str, tuple[str, ...]] = {
    "PNG": ("icc", "exif", "xmp"), "JPEG": ("icc", "exif", "xmp"), "WEBP": ("icc", "exif", "xmp"),
    "AVIF": ("icc", "exif", "xmp"), "TIFF": ("icc", "exif", "xmp"),
}
#: JPEG keeps each in one marker segment (ICC alone is split over several by Pillow).
_JPEG_MAX_EXIF = 65533  # APP1 with the Exif\0\0 prefix
_JPEG_MAX_XMP = 65504  # APP1 after the XMP namespace


def _metadata_kwargs(fmt: str, md: Metadata | None, name: str, notes: list[str]) -> dict:
    """Pillow save arguments that write ``md`` into ``fmt``; notes for what cannot go in."""
    if md is None:
        return {}
    keep = METADATA_FORMATS.get(fmt, ())
    dropped = [_LABELS[n] for n, _ in md.items() if n not in keep]
    values = {n: v for n, v in md.items() if n in keep}
    exif, xmp = values.get("exif"), values.get("xmp")
    if fmt == "JPEG" and exif is not None and len(EXIF_PREFIX) + len(exif) > _JPEG_MAX_EXIF:
        dropped.append(f"EXIF ({len(exif)} bytes, over JPEG's 64 KiB segment)")
        exif = None
    if fmt == "JPEG" and xmp is not None and len(xmp) > _JPEG_MAX_XMP:
        dropped.append(f"XMP ({len(xmp)} bytes, over JPEG's 64 KiB segment)")
        xmp = None
    if dropped:
        notes.append(f"{fmt} cannot store {', '.join(dropped)}: dropped in {name}")
    kwargs: dict = {}
    if "icc" in values:
        kwargs["icc_profile"] = values["icc"]
    if fmt == "TIFF" and (exif is not None or xmp is not None):
        # Pillow's TIFF writer takes either tiffinfo or exif: the EXIF tags (sub-directories
        # included, since they are loaded from bytes) and the XMP tag 700 go in together
        from PIL import Image

        tags = Image.Exif()
        if exif is not None:
            tags.load(exif)
        if xmp is not None:
            tags[700] = xmp
        kwargs["exif"] = tags
        return kwargs
    if exif is not None:
        # JPEG's APP1 needs the Exif\0\0 prefix; the others take the TIFF structure itself
        kwargs["exif"] = EXIF_PREFIX + exif if fmt == "JPEG" else exif
    if xmp is not None:
        if fmt == "PNG":
            from PIL import PngImagePlugin

            from .png import xmp_itxt

            info = PngImagePlugin.PngInfo()
            # written by hand so that the XMP bytes go in verbatim (add_itxt takes a str)
            info.add(b"iTXt", xmp_itxt(xmp))
            kwargs["pnginfo"] = info
        else:
            kwargs["xmp"] = xmp
    return kwargs


def format_for(ext: str) -> str:
    """Pillow's format name for a file extension ("png", ".JPG", ...); ImageError if none."""
    from PIL import Image

    ext = "." + ext.lower().lstrip(".")
    Image.preinit()  # BMP, GIF, JPEG, PNG, PPM: a few ms; init() imports every plugin (0.13 s)
    fmt = Image.EXTENSION.get(ext)
    if fmt is None:
        Image.init()
        fmt = Image.EXTENSION.get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(f"unknown output format '{ext if ext != '.' else '(none)'}'; use e.g. .png")
    return fmt


#: zlib level of PNG outputs: level 1 writes a 768x512 photo in 0.06 s against 0.14 s at
#: Pillow's default 6, for a 7 % larger file (measured on sunhays80; docs/benchmarks.md).
#: The PNG is lossless either way; ``cgdm decode --png-level 9`` trades time for size.
PNG_LEVEL = 1


#: Output formats whose writers take a quality 0..100 (``cgdm decode --output-quality``).
QUALITY_FORMATS = ("JPEG", "WEBP", "AVIF")


def _parallel_png(im, threads: int) -> bool:
    """Large 8-bit pictures go to ``png.write_png`` (deflated on every core); small ones
    stay with Pillow's writer, which is as fast there and needs no numpy."""
    from .png import PARALLEL_MIN_BYTES

    return (im.mode in ("L", "LA", "RGB", "RGBA") and threads > 1
            and im.width * im.height * len(im.getbands()) >= PARALLEL_MIN_BYTES)


def write_image(im, f: BinaryIO, fmt: str, name: str = "output", png_level: int = PNG_LEVEL,
                quality: int | None = None, threads: int | None = None) -> list[str]:
    """Encode ``im`` into the open file ``f`` as ``fmt``, with the metadata in ``im.info``
    (as :func:`to_pil` puts it) where the format can hold it (:data:`METADATA_FORMATS`);
    returns notes for the user, also for what could not be kept. ``quality`` (0..100) is
    passed to the JPEG, WebP and AVIF writers; None keeps Pillow's default. ``threads``: the
    cores a large PNG may be deflated on (default: the granted cores, ``cores.granted_cores``)."""
    notes: list[str] = []
    md = metadata_from_info(im.info, im.mode in ("L", "LA"), im.mode, notes)
    kwargs = _metadata_kwargs(fmt, md, name, notes)
    if fmt in _NO_ALPHA_FORMATS and im.mode in ("RGBA", "LA"):
        notes.append(f"{fmt} cannot store alpha: alpha dropped in {name}")
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
    if threads is None:
        from .cores import granted_cores

        threads = granted_cores()
    if fmt == "PNG" and _parallel_png(im, threads):
        import numpy as np

        from .png import write_png

        write_png(f, np.asarray(im), png_level, icc=kwargs.get("icc_profile"), exif=kwargs.get("exif"),
                  xmp=None if md is None else md.xmp, threads=threads)
        return notes
    if fmt == "PNG":
        kwargs["compress_level"] = png_level
    if quality is not None:
        if fmt not in QUALITY_FORMATS:
            raise ConfigError(f"an output quality applies to JPEG, WebP and AVIF outputs, not {fmt}")
        kwargs["quality"] = quality
    if fmt == "GIF" and im.mode not in ("L", "LA") and im.getcolors(256) is None:
        notes.append(f"GIF holds at most 256 colours: {name} was reduced to a 256-colour palette")
    im.save(f, format=fmt, **kwargs)
    return notes


def save(im, path: str | Path, overwrite: bool = True, png_level: int = PNG_LEVEL,
         fmt: str | None = None, quality: int | None = None, threads: int | None = None) -> list[str]:
    """Write atomically in ``fmt`` (default: the format the extension names); returns notes
    for the user.

    The metadata in ``im.info`` (as :func:`to_pil` puts it) is written where the format
    can hold it (:data:`METADATA_FORMATS`), with a note for what it cannot.
    With ``overwrite`` False an existing file is left alone (``OutputExistsError``).
    A character device or a named pipe (``/dev/null``) is written directly.
    """
    path = Path(path)
    if fmt is None:
        try:
            fmt = format_for(path.suffix or ".")
        except ImageError as e:
            raise ImageError(f"{path}: {e}") from None
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ImageError(f"{path}: folder {directory} does not exist")
    notes: list[str] = []

    def writer(f: BinaryIO) -> None:
        notes.extend(write_image(im, f, fmt, path.name, png_level, quality, threads))

    try:
        write_with(path, writer, overwrite, suffix=path.suffix.lower() or ".part")
    except (OutputExistsError, ConfigError):
        raise
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None
    except (ValueError, KeyError) as e:
        raise ImageError(f"{path}: cannot write ({e})") from None
    return notes
