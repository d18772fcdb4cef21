"""The Python API: ``cgdm_codec.encode``, ``decode`` and ``info``.

A thin layer over :mod:`cgdm_codec.pipeline` and :mod:`cgdm_codec.container` that accepts
what a caller has at hand (a path, the bytes of a file, a Pillow image), checks the
settings up front so that mistakes end in one of the project's one-line exceptions
(:mod:`cgdm_codec.errors`), and imports torch only when pixels are actually coded:
``info`` reads headers with the standard library alone.

The weights are loaded once per process and cached by the pipeline, so calling ``encode``
or ``decode`` in a loop (or in a long-lived worker) pays the loading cost only once.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar, Union

from .container import CgdmFile, Limits, parse, read_file, summary
from .errors import ConfigError, FormatError, ImageError, WeightsError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from .imageio import CodecImage

#: A ``.cgdm`` file: its bytes, or a path to it.
CgdmSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
#: An image to compress: a Pillow image, a path to an image file, or an image file's bytes.
ImageSource = Union["PILImage.Image", bytes, bytearray, memoryview, str, "os.PathLike[str]"]
Progress = Callable[[str], None]

from .base import registry  # noqa: E402  (standard library data: no backend's coder loads)
from .options import (BASES, DECODE_OPTION, DECODE_OPTIONS, DEFAULT_QUALITY, DEVICES, EFFORTS,  # noqa: E402,F401
                      ENCODE_OPTION, ENCODE_OPTIONS, LOSSLESS_CONFLICTS, PRECISIONS, DecodeSettings,
                      EncodeSettings, Option, RunSettings, surface_options)
from .options import RUNTIMES  # noqa: E402  (engines.choose's choices)

#: The name the encoder's table had before the decoder's joined it (``options.Option``).
EncodeOption = Option

__all__ = ["encode", "decode", "info", "check_environment", "EFFORTS", "BASES", "DEVICES",
           "ENCODE_OPTIONS", "DECODE_OPTIONS", "Option", "EncodeOption", "LOSSLESS_CONFLICTS",
           "EncodeSettings", "DecodeSettings", "encode_with", "decode_with"]


def _quiet(_: str) -> None:
    pass


#: The environment variables that stand in for an option, and the option: each is checked
#: as its option is, so that a typo is one ConfigError naming the variable, never a
#: traceback from deep in the pipeline or a setting silently ignored.
ENV_CHOICES = {"CGDM_BASE": ("--base", BASES), "CGDM_RUNTIME": ("--runtime", RUNTIMES),
               "CGDM_PRECISION": ("--precision", PRECISIONS)}
#: Variables naming a weights file ("none" or empty for CGDM_DIFFUSION_WEIGHTS: no stage).
ENV_FILES = ("CGDM_BASE_WEIGHTS", "CGDM_DIFFUSION_WEIGHTS")


def check_environment(environ: "os._Environ[str] | dict[str, str] | None" = None) -> None:
    """Raise ConfigError for the first CGDM_* variable whose value its option would refuse
    (the size limits: ``Limits.from_env``)."""
    env = os.environ if environ is None else environ
    for var, (option, choices) in ENV_CHOICES.items():
        value = env.get(var)
        if value and value not in choices:
            raise ConfigError(f"{var}={value!r} is not one of {', '.join(choices)} (as {option})")
    for var in ENV_FILES:
        value = env.get(var)
        if value and value.lower() != "none" and not Path(value).is_file():
            raise ConfigError(f"{var}={value!r}: no such weights file")
    Limits.from_env(env)


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _limits(limits: Limits | None) -> Limits:
    """The caller's limits, else those the environment sets (CGDM_MAX_SIDE / CGDM_MAX_PIXELS)."""
    if limits is None:
        return Limits.from_env()
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a cgdm_codec.container.Limits, got {type(limits).__name__}")
    return limits


def _read(source: CgdmSource, limits: Limits) -> tuple[CgdmFile, int]:
    """The parsed file and its size in bytes, from bytes or a path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > limits.max_file_bytes:
            raise FormatError(f"file too large: {len(data)} bytes (limit {limits.max_file_bytes} bytes)")
        return parse(data, limits), len(data)
    if _is_path(source):
        path = Path(source)
        try:
            f = read_file(path, limits)
        except FormatError as e:
            raise FormatError(f"{path}: {e}") from None
        return f, path.stat().st_size
    raise TypeError(f"expected .cgdm bytes or a path, got {type(source).__name__}")


def _prepare(image: ImageSource, limits: Limits) -> "CodecImage":
    """Map any accepted image source onto the codec's RGB(+alpha) form, with ImageError on trouble."""
    from . import imageio

    if _is_path(image):
        return imageio.load(Path(image), limits)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return imageio.load_bytes(bytes(image), limits, name="the image data")
    from PIL import Image

    if isinstance(image, Image.Image):
        try:
            return imageio.from_pil(image, limits)
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError) as e:  # a lazily loaded, truncated image
            raise ImageError(f"image cannot be read ({e})") from None
    raise TypeError(f"expected a Pillow image, a path or an image file's bytes, got {type(image).__name__}")


S = TypeVar("S", bound=RunSettings)
F = TypeVar("F", bound=Callable[..., Any])


def settings_keywords(cls: type[RunSettings]) -> Callable[[F], F]:
    """Give a function taking ``**options`` the signature of ``cls``'s fields offered on the
    API, as keywords after its own parameters and before its own keyword-only ones: what
    ``help()`` and ``inspect.signature`` show is the option set, from the one place that
    defines it (``options.py``)."""
    types = {f.name: f.type for f in fields(cls)}

    def wrap(func: F) -> F:
        own = [p for p in inspect.signature(func).parameters.values() if p.kind is not p.VAR_KEYWORD]
        named = {p.name for p in own}
        extra = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                                   annotation=types[o.name])
                 for o in surface_options(cls, "api") if o.name not in named]
        first = [p for p in own if p.kind is not p.KEYWORD_ONLY]
        last = [p for p in own if p.kind is p.KEYWORD_ONLY]
        signature = inspect.signature(func).replace(parameters=[*first, *extra, *last])
        func.__signature__ = signature  # type: ignore[attr-defined]
        return func
    return wrap


def settings_from(cls: type[S], caller: str, given: dict[str, Any]) -> S:
    """The settings object of a call's keywords: a keyword the API does not offer is the
    TypeError Python raises for any unknown keyword; a bad value a ConfigError."""
    offered = {o.name for o in surface_options(cls, "api")}
    for name in given:
        if name not in offered:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    return cls.of(given)


@settings_keywords(EncodeSettings)
def encode(image: ImageSource, quality: int | None = None, *, limits: Limits | None = None,
           progress: Progress | None = None, **options: Any) -> bytes:
    """Compress an image into the bytes of a ``.cgdm`` file.

    ``image`` is a Pillow image, a path to any image Pillow reads, or such a file's bytes.
    The keywords are the options of ``cgdm encode`` (``options.EncodeSettings``), checked by
    the same rules: ``quality`` 1..6 (None: 3), or ``size`` (bytes) or ``bpp`` (bits per
    pixel) for the best quality whose file fits, or ``av1_quality`` (Pillow's AVIF quality
    0..100, AV1 base only): one of the four at most. ``lossless`` codes the exact pixels
    instead (base codec ``webp-lossless``, no diffusion stage). ``base`` is one of ``BASES``
    (default: env ``CGDM_BASE``, else AV1). ``base_only`` writes no diffusion stage,
    ``diffusion`` always writes it; without either the encoder adds it only when its weights
    are installed and it scores better. ``effort``, ``finetune_iters``, ``seeds`` and
    ``finetune`` set how hard the encoder searches; ``seed`` is the first noise seed tried,
    ``steps`` the sampler steps written for the decoder. ``metadata`` (``"all"``, ``"none"``
    or a comma list of icc, exif, xmp) and ``strip`` choose the metadata carried.
    ``texture_map`` adds the texture map a decode at ``realism`` > 0 draws its texture from
    (tens of bytes; the fidelity decode never reads it). ``runtime``
    and ``threads``: what runs the networks, and on how many threads. ``progress`` receives
    stage messages.

    Raises ``ConfigError`` (a bad setting), ``ImageError`` (an unreadable or oversized
    image), ``WeightsError`` (weights missing or damaged).
    """
    settings = settings_from(EncodeSettings, "encode", dict(options, quality=quality))
    return encode_with(image, settings, limits=limits, progress=progress)


def encode_with(image: ImageSource, settings: EncodeSettings, *, limits: Limits | None = None,
                progress: Progress | None = None) -> bytes:
    """:func:`encode` for a settings object (the Pillow plugin's ``im.save``)."""
    check_environment()
    prepared = _prepare(image, _limits(limits))

    from .imageio import select_metadata
    from .generations import default_base

    prepared.metadata = select_metadata(prepared.metadata, settings.kept_metadata)
    if not settings.lossless and settings.base is None:
        chosen = default_base()
        if settings.av1_quality is not None and registry.backend(chosen).fine_range is None:
            raise ConfigError(f"av1_quality needs the AV1 base (base='av1'); {chosen} has levels only")
        settings = replace(settings, base=chosen)
    return encode_prepared(prepared, settings, progress or _quiet)


def encode_prepared(prepared: "CodecImage", settings: EncodeSettings, progress: Progress,
                    step_progress: Callable[[str, int, int], None] | None = None) -> bytes:
    """The file at ``settings.level``, or, for a ``size`` or ``bpp`` target, at the best
    setting whose file fits (``target.encode_to_size``, a bisection over real encodes): the
    one encode of ``cgdm_codec.encode``, ``im.save`` and ``cgdm encode``."""
    if settings.size is None and settings.bpp is None:
        from .pipeline import encode_image

        return encode_image(prepared, settings, progress=progress, step_progress=step_progress)
    from .target import encode_to_size

    pixels = prepared.width * prepared.height
    budget = settings.size if settings.size is not None else int(settings.bpp * pixels / 8)
    fitted = encode_to_size(prepared, budget, settings, progress=progress, step_progress=step_progress)
    progress(f"chose {fitted.setting.describe(fitted.base)}: {len(fitted.data)} bytes for a target of "
             f"{budget} ({100 * fitted.miss:.1f} % under)")
    return fitted.data


@settings_keywords(DecodeSettings)
def decode(data: CgdmSource, *, limits: Limits | None = None, progress: Progress | None = None,
           **options: Any) -> "PILImage.Image":
    """Decode a ``.cgdm`` file (its bytes or a path) to a Pillow image.

    The image has the mode it was encoded from: RGB, L, RGBA or LA, and the file's metadata
    in ``im.info`` (none with ``strip``). The keywords are the options of ``cgdm decode``
    that concern the picture (``options.DecodeSettings``; the output file's format and its
    writer's settings are the caller's ``im.save``): ``base_only`` skips the diffusion stage
    (a fast preview); ``steps`` overrides the file's step count. ``realism`` 0..1 is the
    decode-time dial: 0 the fidelity decode, above 0 the installed realism network of the
    file's weights runs and the texture energy the decode lacks is put back (its kept fine
    detail strengthened, seeded grain where none is left; same file, ``docs/diffusion.md``).
    ``limits`` bound the image size accepted (default: env ``CGDM_MAX_SIDE``/``CGDM_MAX_PIXELS``).
    ``precision`` ``"int8"`` runs the quantised graphs where the weights have them (default:
    env ``CGDM_PRECISION``, else ``"float32"``, the reference decode; ``docs/quantisation.md``).

    Raises ``FormatError`` (not a valid .cgdm file), ``WeightsError`` (the file needs other
    weights than the installed ones), ``ConfigError`` (a bad setting), ``OSError`` (a path
    that cannot be read).
    """
    settings = settings_from(DecodeSettings, "decode", options)
    f, _ = _read(data, _limits(limits))
    return decode_with(f, settings, progress)


@settings_keywords(DecodeSettings)
def decode_parsed(f: CgdmFile, *, progress: Progress | None = None, **options: Any) -> "PILImage.Image":
    """Decode an already parsed file (``container.parse``), by :func:`decode`'s keywords."""
    return decode_with(f, settings_from(DecodeSettings, "decode_parsed", options), progress)


def decode_with(f: CgdmFile, settings: DecodeSettings, progress: Progress | None = None,
                step_progress: Callable[[str, int, int], None] | None = None) -> "PILImage.Image":
    """The decode of a parsed file with a settings object: the one decode of
    ``cgdm_codec.decode``, the Pillow plugin and ``cgdm decode``."""
    from .pipeline import decode_image

    check_environment()
    return decode_image(f, settings, progress=progress or _quiet, step_progress=step_progress)


def describe(f: CgdmFile, file_bytes: int) -> dict[str, Any]:
    """The ``info`` dict: the container's summary, with the base codec by name (as ``cgdm
    info`` prints it; the number stays as ``base_codec_id``) and the weights by name, with
    whether a realism network is installed for them: what a user needs to know before
    asking for ``--realism`` or ``--fast``, which a 4-byte hash does not tell
    (``generations.named_by``: manifests only, no weights file read or hashed)."""
    from .generations import companion_of, named_by

    s = summary(f, file_bytes)
    record = registry.BY_ID.get(f.base_codec)
    s["base_codec_id"] = f.base_codec
    s["base_codec"] = record.name if record is not None else f"id {f.base_codec}"
    s["lossless"] = record is not None and record.lossless
    name, realism = named_by(f) if record is not None else (None, False)
    s["weights"], s["realism"] = name, realism
    s["fast"] = bool(f.diffusion and name and record is not None and companion_of(record.name, name, "fast"))
    return s


def info(data: CgdmSource, *, limits: Limits | None = None) -> dict[str, Any]:
    """Describe a ``.cgdm`` file without decoding it: the dict ``cgdm info --json`` prints.

    Needs neither torch nor the weights. Raises ``FormatError`` for a file that is not valid.
    ``limits`` default to the format's own, not the environment's: no pixel is decoded, so
    ``CGDM_MAX_SIDE`` has no reason to refuse a file here.
    """
    f, size = _read(data, Limits() if limits is None else _limits(limits))
    return describe(f, size)
