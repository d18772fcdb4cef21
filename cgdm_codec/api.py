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

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

from .container import CgdmFile, Limits, parse, read_file, summary
from .errors import ConfigError, FormatError, ImageError, WeightsError
from .weights import decoders, weights_id

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from .imageio import CodecImage

#: A ``.cgdm`` file: its bytes, or a path to it.
CgdmSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
#: An image to compress: a Pillow image, a path to an image file, or an image file's bytes.
ImageSource = Union["PILImage.Image", bytes, bytearray, memoryview, str, "os.PathLike[str]"]
Progress = Callable[[str], None]

EFFORTS = ("fast", "default", "max")
DEVICES = ("auto", "cpu", "cuda")
from .base import registry  # noqa: E402  (standard library data: no backend's coder loads)
from .pipeline import RUNTIMES  # noqa: E402  (pipeline.pick_runtime's choices)

#: The registered base codecs, the default first (``base.registry``).
BASES = registry.names()

__all__ = ["encode", "decode", "info", "check_environment", "check_lossless", "EFFORTS", "BASES", "DEVICES",
           "ENCODE_OPTIONS", "EncodeOption", "LOSSLESS_CONFLICTS"]


@dataclass(frozen=True)
class EncodeOption:
    """One encoder setting, described once for ``encode``, ``cgdm encode`` and ``im.save``.

    ``name`` is the keyword of :func:`encode` (and of Pillow's ``im.save``); the CLI spells it
    ``--name-with-dashes`` unless ``cli`` says otherwise. An integer setting has ``low`` and
    ``high``; a text setting ``choices``; ``flag`` marks a bool.
    """

    name: str
    default: Any
    help: str
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()
    flag: bool = False
    cli: str | None = None  # the CLI's spelling where it differs (a negated flag, a short name)

    def check(self, value: Any) -> Any:
        """``value`` if it is valid for this setting, else a ConfigError naming the setting."""
        if value is None and self.default is None:
            return value
        if self.flag:
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name} must be True or False, got {value!r}")
            return value
        if self.choices:
            if value not in self.choices:
                raise ConfigError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        assert self.low is not None and self.high is not None
        return _int_in(self.name, value, self.low, self.high)


#: The encoder's settings: the keywords of :func:`encode` after the image, the ``cgdm encode``
#: options of the same names and the keywords ``im.save`` passes on (``cgdm_codec.pillow``).
ENCODE_OPTIONS: tuple[EncodeOption, ...] = (
    EncodeOption("quality", 3, "Quality level: 1 = smallest file (~0.06 bpp) .. 6 = best (~1 bpp).",
                 low=1, high=6),
    EncodeOption("base", None, f"Base codec: {' or '.join(BASES)} [default: {registry.DEFAULT_BACKEND}, "
                 "or env CGDM_BASE].", choices=BASES),
    EncodeOption("base_only", False, "Write a file without the diffusion stage (smaller, fast to "
                 "decode, less detail).", flag=True),
    EncodeOption("lossless", False, "Code the exact pixels (RGB, L, RGBA, LA; WebP's lossless coder, "
                 "no diffusion stage): decodes bit for bit to the input. Not with a quality, a size "
                 "target, --base or the diffusion stage's settings.", flag=True),
    EncodeOption("effort", "default", "How hard the encoder works: the AV1 speed (8; 3, or 4 above 4.2 MP; 2) and, for the "
                 "diffusion stage, its search for the syntax and seed: fast and default = one pass of "
                 "the syntax encoder, and both score the diffusion-or-not decision on a decode (default on "
                 "up to 12 tiles' worth of pixels, fast 4); max = the paper's 250 fine-tuning iterations and 4 seeds.", choices=EFFORTS),
    EncodeOption("seed", 0, "Noise seed the decoder's diffusion starts from (the first one tried "
                 "when searching seeds).", low=0, high=2**32 - 1),
    EncodeOption("steps", None, "Sampler steps the decoder should run [default: the newest decoder's, 1].",
                 low=1, high=255),
    EncodeOption("av1_quality", None, "AV1 base: Pillow's AVIF quality 0..100 instead of the level "
                 "(a fine-grained rate).", low=0, high=100),
    EncodeOption("finetune_iters", None, "Override the effort's number of per-image fine-tuning "
                 "iterations.", low=0, high=100000),
    EncodeOption("seeds", None, "Override the effort's number of noise seeds tried (each costs one "
                 "decode).", low=1, high=1024),
    EncodeOption("finetune", True, "Skip the per-image fine-tuning (seeds are still searched).",
                 flag=True, cli="--no-finetune"),
    EncodeOption("device", "auto", "Where the networks run (entropy coding always runs on the CPU).",
                 choices=DEVICES),
    EncodeOption("runtime", "auto", "What runs the diffusion stage's networks: onnx (ONNX Runtime on the "
                 "CPU, no torch needed), torch, or auto (torch for CUDA and the learned base, else onnx; "
                 "env CGDM_RUNTIME).", choices=RUNTIMES),
    EncodeOption("threads", None, "Threads for the networks [default: the cores this process may use].",
                 low=1, high=1024),
)
ENCODE_OPTION = {o.name: o for o in ENCODE_OPTIONS}


#: The settings a lossless encode has no use for: each chooses a rate or a base codec, or
#: shapes the diffusion stage a lossless file does not have. Giving one with ``lossless`` is
#: a contradiction (ConfigError; a usage error in the CLI), not silently ignored.
LOSSLESS_CONFLICTS = ("quality", "base", "av1_quality", "seed", "steps", "finetune_iters", "seeds", "finetune")


def check_lossless(settings: dict[str, Any]) -> None:
    """Refuse, in one line, the settings of ``LOSSLESS_CONFLICTS`` given away from their
    defaults together with ``lossless=True`` (``quality`` counts as given unless None)."""
    if not settings.get("lossless"):
        return
    given = [name for name in LOSSLESS_CONFLICTS if name in settings
             and settings[name] != (None if name == "quality" else ENCODE_OPTION[name].default)]
    if given:
        raise ConfigError(f"lossless codes the exact pixels without a diffusion stage: "
                          f"{', '.join(given)} cannot be given with it")


def _quiet(_: str) -> None:
    pass


def _int_in(name: str, value: Any, low: int, high: int) -> int:
    """An integer setting in low..high, or a ConfigError naming it (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


#: The environment variables that stand in for an option, and the option: each is checked
#: as its option is, so that a typo is one ConfigError naming the variable, never a
#: traceback from deep in the pipeline or a setting silently ignored.
ENV_CHOICES = {"CGDM_BASE": ("--base", BASES), "CGDM_RUNTIME": ("--runtime", RUNTIMES)}
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


def _check_device(device: Any) -> str:
    """The CLI's choices; whether CUDA is present is checked once torch is loaded."""
    return ENCODE_OPTION["device"].check(device)


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


def encode(image: ImageSource, quality: int | None = None, *, base: str | None = None,
           base_only: bool = False, lossless: bool = False, effort: str = "default", seed: int = 0,
           steps: int | None = None, av1_quality: int | None = None,
           finetune_iters: int | None = None, seeds: int | None = None, finetune: bool = True,
           device: str = "auto", runtime: str = "auto", threads: int | None = None,
           limits: Limits | None = None, progress: Progress | None = None) -> bytes:
    """Compress an image into the bytes of a ``.cgdm`` file.

    ``image`` is a Pillow image, a path to any image Pillow reads, or such a file's bytes.
    ``quality`` 1..6 (1 = smallest; None: 3). ``lossless`` codes the exact pixels instead
    (base codec ``webp-lossless``, no diffusion stage; not with ``quality``, ``base``,
    ``av1_quality`` or the diffusion stage's settings). ``base`` is one of ``BASES`` (``"av1"``, ``"hyperprior"``;
    default: env ``CGDM_BASE``, else AV1). ``base_only`` writes no diffusion stage (fast to
    decode); without it the encoder adds the stage only when its weights are installed and
    it scores better.
    ``effort`` (``"fast"``, ``"default"``, ``"max"``), ``finetune_iters``, ``seeds`` and
    ``finetune`` set how hard the encoder searches; ``seed`` is the first noise seed tried,
    ``steps`` the DDIM steps written for the decoder, ``av1_quality`` Pillow's AVIF quality
    0..100 instead of the level (AV1 base only). ``runtime`` and ``threads``: what runs the
    networks, and on how many threads. ``progress`` receives stage messages.

    Raises ``ConfigError`` (a bad setting), ``ImageError`` (an unreadable or oversized
    image), ``WeightsError`` (weights missing or damaged).
    """
    settings = dict(quality=quality, base=base, base_only=base_only, lossless=lossless, effort=effort,
                    seed=seed, steps=steps, av1_quality=av1_quality, finetune_iters=finetune_iters,
                    seeds=seeds, finetune=finetune, device=device, runtime=runtime, threads=threads)
    for name, value in settings.items():
        if not (name == "quality" and value is None):
            ENCODE_OPTION[name].check(value)
    check_lossless(settings)
    quality = ENCODE_OPTION["quality"].default if quality is None else quality
    check_environment()
    lim = _limits(limits)
    prepared = _prepare(image, lim)

    from .pipeline import default_base, encode_image

    chosen = None if lossless else base or default_base()
    if av1_quality is not None and registry.backend(chosen).fine_range is None:
        raise ConfigError(f"av1_quality needs the AV1 base (base='av1'); {chosen} has levels only")
    return encode_image(prepared, quality, diffusion=False if base_only else None, seed=seed,
                        steps=steps, effort=effort, finetune_iters=finetune_iters, seeds=seeds,
                        finetune=finetune, device=device, progress=progress or _quiet,
                        base=chosen, fine=av1_quality, runtime=runtime, threads=threads, lossless=lossless)


def decode(data: CgdmSource, *, base_only: bool = False, steps: int | None = None,
           realism: float = 0.0, device: str = "auto", runtime: str = "auto", threads: int | None = None,
           limits: Limits | None = None, progress: Progress | None = None) -> "PILImage.Image":
    """Decode a ``.cgdm`` file (its bytes or a path) to a Pillow image.

    The image has the mode it was encoded from: RGB, L, RGBA or LA. ``base_only`` skips the
    diffusion stage (a fast preview); ``steps`` overrides the file's step count. ``realism``
    0..1 is the decode-time dial: 0 the fidelity decode, above 0 the installed realism network
    of the file's weights runs and the texture energy the decode lacks is put back (its kept
    fine detail strengthened, seeded grain where none is left; same file, ``docs/diffusion.md``).
    ``limits`` bound the image size accepted (default: env ``CGDM_MAX_SIDE``/``CGDM_MAX_PIXELS``).

    Raises ``FormatError`` (not a valid .cgdm file), ``WeightsError`` (the file needs other
    weights than the installed ones), ``ConfigError`` (a bad setting), ``OSError`` (a path
    that cannot be read).
    """
    if steps is not None:
        _int_in("steps", steps, 1, 255)
    _check_device(device)
    f, _ = _read(data, _limits(limits))
    return decode_parsed(f, base_only=base_only, steps=steps, realism=realism, device=device,
                         runtime=runtime, threads=threads, progress=progress)


def check_realism(realism: Any) -> float:
    if isinstance(realism, bool) or not isinstance(realism, (int, float)) or not 0 <= realism <= 1:
        raise ConfigError(f"realism must be a number in 0..1, got {realism!r}")
    return float(realism)


def decode_parsed(f: CgdmFile, *, base_only: bool = False, steps: int | None = None, realism: float = 0.0,
                  device: str = "auto", runtime: str = "auto", threads: int | None = None,
                  progress: Progress | None = None) -> "PILImage.Image":
    """Decode an already parsed file (the Pillow plugin parses the header before the pixels)."""
    from .pipeline import decode_image

    check_environment()
    ENCODE_OPTION["runtime"].check(runtime)
    ENCODE_OPTION["threads"].check(threads)
    return decode_image(f, base_only=base_only, steps=steps, device=device, progress=progress or _quiet,
                        realism=check_realism(realism), runtime=runtime, threads=threads)


def describe(f: CgdmFile, file_bytes: int) -> dict[str, Any]:
    """The ``info`` dict: the container's summary, with the base codec by name (as ``cgdm
    info`` prints it; the number stays as ``base_codec_id``) and the weights by name, with
    whether a realism network is installed for them: what a user needs to know before
    asking for ``--realism``, which a 4-byte hash does not tell."""
    s = summary(f, file_bytes)
    record = registry.BY_ID.get(f.base_codec)
    s["base_codec_id"] = f.base_codec
    s["base_codec"] = record.name if record is not None else f"id {f.base_codec}"
    s["lossless"] = record is not None and record.lossless
    name, realism = _weights_of(f, record) if record is not None else (None, False)
    s["weights"], s["realism"] = name, realism
    return s


def _weights_of(f: CgdmFile, record: Any) -> tuple[str | None, bool]:
    """The installed weights a file names ("none" where it needs none; None where they are
    not installed here) and whether its decode can run a realism network. Manifests only:
    no weights file is read or hashed."""
    from .pipeline import NO_WEIGHTS_ID, cgdm_weights_paths
    from .weights import BASE_WEIGHTS, base_weights_path, read_checked_manifest

    try:
        base = read_checked_manifest(base_weights_path())["sha256"] if record.network else ""
        if not f.diffusion:
            named = weights_id(base) if base else NO_WEIGHTS_ID
            return (BASE_WEIGHTS if base else "none") if f.weights_id == named else None, False
        for path in cgdm_weights_paths(record.name):
            manifest = read_checked_manifest(path)
            if any(weights_id(*(p for p in (base, ident) if p)) == f.weights_id
                   for ident, _ in decoders(manifest)):
                return path.stem, _has_realism(path.stem, manifest, record)
    except (WeightsError, OSError, KeyError, TypeError):
        pass
    return None, False


def _has_realism(name: str, manifest: dict, record: Any) -> bool:
    """Whether ``--realism`` above 0 does something for files of the weights ``name``."""
    from .weights import read_checked_manifest, weights_dir

    if manifest.get("config", {}).get("unet", {}).get("realism"):
        return True
    paths = (weights_dir() / f"{r}.safetensors" for r in record.realism_weights)
    return any(p.is_file() and name in read_checked_manifest(p).get("realism_for", ()) for p in paths)


def info(data: CgdmSource, *, limits: Limits | None = None) -> dict[str, Any]:
    """Describe a ``.cgdm`` file without decoding it: the dict ``cgdm info --json`` prints.

    Needs neither torch nor the weights. Raises ``FormatError`` for a file that is not valid.
    ``limits`` default to the format's own, not the environment's: no pixel is decoded, so
    ``CGDM_MAX_SIDE`` has no reason to refuse a file here.
    """
    f, size = _read(data, Limits() if limits is None else _limits(limits))
    return describe(f, size)
