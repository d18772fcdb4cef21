"""A Pillow plugin for ``.cgdm`` files: ``import cgdm_codec.pillow`` and Pillow knows the format.

    from PIL import Image
    import cgdm_codec.pillow

    with Image.open("photo.cgdm") as im:    # reads and checks the header only
        print(im.size, im.mode)             # no pixel decoded yet, torch not imported
        im.save("photo.png")                # decodes now
    Image.open("photo.png").save("small.cgdm", quality=2, base="av1", base_only=True)

Opening parses the whole container (the checksum sits at its end, and files are small),
so a damaged file fails at ``Image.open`` with a ``FormatError``; the pixels, which need
torch and the weights, are decoded on first use (``load()``, or any pixel access).

``im.info`` holds ``cgdm`` (the :func:`cgdm_codec.info` dict) and, as Pillow's JPEG, PNG and
WebP readers put them, the file's ``icc_profile``, ``exif`` (with the ``Exif\\0\\0`` prefix)
and ``xmp``.

Decode settings: ``im.decode_options`` (per image, before the pixels are used) starts as a
copy of :data:`DECODE_OPTIONS` (per process): the fields of ``options.DecodeSettings`` that
concern the picture -- ``base_only``, ``steps``, ``realism`` (the decode-time dial, 0..1),
``strip``, ``precision``, ``device``, ``runtime``, ``threads``.
Save options (``im.save(..., **options)``): the keywords of :func:`cgdm_codec.encode`
(``options.EncodeSettings``): ``quality`` 1..6 (default 3), ``size``, ``bpp``, ``base``,
``base_only``, ``lossless`` (the exact pixels: ``im.save("x.cgdm", lossless=True)``),
``diffusion``, ``effort``, ``seed``, ``steps``, ``av1_quality``, ``metadata``, ``strip``...
"""

from __future__ import annotations

import warnings
from typing import IO, Any

from PIL import Image, ImageFile

from .api import describe
from .options import DecodeSettings, EncodeSettings, surface_options
from .atomic import write_all
from .container import MAGIC, CgdmFile, Limits, parse
from .errors import ConfigError, FormatError
from .imageio import EXIF_PREFIX

FORMAT = "CGDM"
EXTENSION = ".cgdm"
MIME = "image/x-cgdm"  # no registered media type exists; the x- prefix says so

#: Defaults for decoding opened files; change them to affect every later ``Image.open``.
#: The decode options the plugin offers (``options.DECODE_OPTIONS``), at their defaults.
DECODE_OPTIONS: dict[str, Any] = {o.name: o.default for o in surface_options(DecodeSettings, "pillow")}

#: The ``im.save`` keywords passed on to :func:`cgdm_codec.encode`: the encode options the
#: plugin offers (``options.EncodeSettings``). Pillow adds its own keys to ``encoderinfo``,
#: which are not ours to reject.
SAVE_OPTIONS = tuple(o.name for o in surface_options(EncodeSettings, "pillow"))
#: The metadata keys ``Image.open`` puts in ``im.info``, which ``strip`` leaves out.
METADATA_KEYS = ("icc_profile", "exif", "xmp")


def _accept(prefix: bytes) -> bool:
    return prefix[: len(MAGIC)] == MAGIC


class CgdmImageFile(ImageFile.ImageFile):
    """An opened ``.cgdm`` file: size and mode from the header, pixels decoded lazily."""

    format = FORMAT
    format_description = "cgdm perceptual image codec"

    def _open(self) -> None:
        assert self.fp is not None
        limits = Limits.from_env()
        data = self.fp.read(limits.max_file_bytes + 1)
        if len(data) > limits.max_file_bytes:
            raise FormatError(f"file too large: more than {limits.max_file_bytes} bytes")
        # A damaged file with the right magic is reported as such (a FormatError passes
        # through Image.open), not as "cannot identify image file".
        self._cgdm: CgdmFile | None = parse(data, limits)
        f = self._cgdm
        self._size = (f.width, f.height)
        self._mode = f.colour_mode.name  # RGB, L, RGBA, LA: Pillow's names too
        self.info["cgdm"] = describe(f, len(data))
        # the metadata where Pillow's own readers put it, so that code written for a JPEG
        # or PNG (im.info["icc_profile"], im.getexif(), im.save(..., exif=...)) works as is
        if f.metadata is not None and not DECODE_OPTIONS.get("strip"):
            if f.metadata.icc is not None:
                self.info["icc_profile"] = f.metadata.icc
            if f.metadata.exif is not None:
                self.info["exif"] = EXIF_PREFIX + f.metadata.exif
            if f.metadata.xmp is not None:
                self.info["xmp"] = f.metadata.xmp
        self.decode_options: dict[str, Any] = dict(DECODE_OPTIONS)
        self.tile = []

    def load(self) -> Any:
        """Decode the pixels on first use (the pipeline, torch and the weights load here)."""
        if self._cgdm is not None:
            from .api import decode_with

            opts = dict(self.decode_options)
            settings = DecodeSettings.of(opts)  # an unknown key or a bad value: ConfigError, as from decode()
            unoffered = sorted(set(opts) - set(DECODE_OPTIONS))
            if unoffered:
                raise ConfigError(f"{', '.join(unoffered)}: not a decode option of the Pillow plugin "
                                  f"(its result is a Pillow image; see options.DECODE_OPTIONS)")
            decoded = decode_with(self._cgdm, settings)
            if settings.strip:
                for key in METADATA_KEYS:
                    self.info.pop(key, None)
            self.im = decoded.im
            self._cgdm = None
            self.readonly = 0
            if self._exclusive_fp and self.fp is not None:
                self.fp.close()
            self.fp = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Encode ``im`` with the options given to ``im.save`` (see the module docstring)."""
    from .api import encode_with

    info = getattr(im, "encoderinfo", {}) or {}
    settings = EncodeSettings.of({k: info[k] for k in SAVE_OPTIONS if k in info})
    write_all(fp, encode_with(im, settings))  # fp may be unbuffered


def _save_all(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """``im.save(..., save_all=True)``: a .cgdm file holds one picture, so the first frame is
    saved, with a warning naming what is left out (Pillow's KeyError said nothing useful)."""
    info = getattr(im, "encoderinfo", {}) or {}
    frames = getattr(im, "n_frames", 1) + len(info.get("append_images") or ())
    if frames > 1:
        warnings.warn(f"a .cgdm file holds one picture: only the first of {frames} frames is saved",
                      UserWarning, stacklevel=3)
    current = im.tell() if hasattr(im, "tell") else 0
    if current:
        im.seek(0)
    try:
        first = im.copy() if current else im
        first.encoderinfo = info
        _save(first, fp, filename)
    finally:
        if current:
            im.seek(current)


def register() -> None:
    """Tell Pillow about the format (done on import; calling it again is harmless)."""
    Image.register_open(FORMAT, CgdmImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_save_all(FORMAT, _save_all)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register()
