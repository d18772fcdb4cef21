"""Every encode and decode option, described once: the fields of ``EncodeSettings`` and
``DecodeSettings``.

A settings object is what travels: each surface -- the ``cgdm`` command (``cli``),
``cgdm_codec.encode``/``decode`` (``api``), the Pillow plugin's ``im.save`` keywords and
``im.decode_options`` (``pillow``) and ``python -m cgdm_codec.distributed`` (``distributed``)
-- builds one from what it was given and passes it whole, by the same names, to the codec.
Each field's metadata is its :class:`Option`: help, range or choices, command-line spelling,
an example, and ``not_on``, the surfaces without it and why (``-j`` for a function call).
Every surface builds its options from these fields (``ENCODE_OPTIONS``, ``DECODE_OPTIONS``),
so an option cannot exist on one surface and be forgotten on another; constructing a
settings object checks every value and the cross-option rules (:func:`check_encode`,
:func:`check_decode`), so a bad value reads the same everywhere. ``tests/cli/test_options.py``
walks both over all four surfaces; docs/api.md ("Adding an option") says what a new one takes.

Standard library only: ``cgdm --help`` and ``import cgdm_codec`` stay instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Callable, ClassVar, Mapping, TypeVar

from .base import registry  # standard library data: no backend's coder loads
from .container import MAX_DIM, MAX_PIXELS
from .errors import ConfigError
from .imageio import PNG_LEVEL  # imageio loads Pillow and numpy only inside its functions
from .engines import RUNTIMES  # engines.choose's choices (standard library only)

SURFACES = ("cli", "api", "pillow", "distributed")
EFFORTS = ("fast", "default", "max")
DEVICES = ("auto", "cpu", "cuda")
#: The registered base codecs, the default first (``base.registry``).
BASES = registry.names()
#: The decode's network precisions (``runtime.PRECISIONS``; repeated here to keep this module
#: standard library only): float32 the default, int8 the quantised graphs (docs/quantisation.md).
PRECISIONS = ("float32", "int8")
#: The level a file gets when no quality, size or AV1 quality is given.
DEFAULT_QUALITY = 3

#: Why the options that concern a command's files and terminal have no keyword in a call.
NO_FILE = "returns the result instead of writing a file: nothing to replace"
PILLOW_FILE = "im.save writes where it is told, replacing a file as Pillow's other formats do"
NO_JOBS = "codes one image per call; run calls in parallel (threads, processes, Dask) for several"
SILENT = "prints nothing: pass progress= to receive the stage messages"
PILLOW_SILENT = "prints nothing, as Pillow's other formats (cgdm_codec.encode/decode take progress=)"
LIMITS_KW = "given as limits=Limits(max_side=..., max_pixels=...) (default: env CGDM_MAX_SIDE / CGDM_MAX_PIXELS)"
LIMITS_ENV = "reads env CGDM_MAX_SIDE / CGDM_MAX_PIXELS"
WRITER = "the result is a Pillow image: its im.save(format, quality=..., compress_level=...) chooses these"


@dataclass(frozen=True)
class Option:
    """One setting, described once for every surface.

    ``name`` is the keyword (API, Pillow); the command lines spell it ``--name-with-dashes``
    unless ``cli`` says otherwise, with ``short`` beside it. A number has ``low``..``high``
    (``high`` None: no upper bound; ``real`` accepts fractions, ``open_low`` excludes
    ``low``), a text setting ``choices`` (checked against ``choices_from()`` where they can
    grow after import: a base codec registered later) or its own ``validate``, ``flag`` marks a bool and
    ``count`` a repeatable flag (-QQ). ``example`` is a valid value other than the default
    (the options test runs each surface with it); ``not_on`` maps a surface without the
    option to the reason.
    """

    name: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    choices_from: Callable[[], tuple[str, ...]] | None = None  # choices that can grow after import
    flag: bool = False
    count: bool = False
    real: bool = False
    open_low: bool = False
    validate: Callable[[Any], Any] | None = None
    cli: str | None = None  # the command lines' spelling where it differs (a negated flag)
    short: str | None = None
    metavar: str | None = None
    example: Any = None
    not_on: Mapping[str, str] = field(default_factory=dict)

    @property
    def flag_name(self) -> str:
        """The long command-line spelling: ``--av1-quality``, ``--no-finetune``."""
        return self.cli or "--" + self.name.replace("_", "-")

    @property
    def spelled(self) -> str:
        """How error messages of the command lines name it: the short form where there is one."""
        return self.short or self.flag_name

    def offered_on(self, surface: str) -> bool:
        assert surface in SURFACES, surface
        return surface not in self.not_on

    def check(self, value: Any) -> Any:
        """``value`` if it is valid for this setting, else a ConfigError naming the setting."""
        if value is None and self.default is None:
            return value
        if self.flag:
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name} must be True or False, got {value!r}")
            return value
        if self.choices:
            choices = self.choices_from() if self.choices_from else self.choices
            if value not in choices:
                raise ConfigError(f"{self.name} must be one of {', '.join(choices)}, got {value!r}")
            return value
        if self.validate is not None:
            if not isinstance(value, str):
                raise ConfigError(f"{self.name} must be a string, got {value!r}")
            self.validate(value)
            return value
        return self._number(value)

    def _number(self, value: Any) -> Any:
        kinds = (int, float) if self.real else (int,)
        low, high = self.low, self.high
        ok = (not isinstance(value, bool) and isinstance(value, kinds)
              and (low is None or (value > low if self.open_low else value >= low))
              and (high is None or value <= high))
        if not ok:
            what = "a number" if self.real else "an integer"
            where = (f"above {low:g}" if self.open_low else f"at least {low:g}") if high is None \
                else f"in {low:g}..{high:g}"
            raise ConfigError(f"{self.name} must be {what} {where}, got {value!r}")
        return float(value) if self.real else value


def _metadata(spec: str) -> None:
    from .imageio import select_metadata

    select_metadata(None, spec)


def _format(name: str) -> None:
    from .errors import ImageError
    from .imageio import format_for

    try:
        format_for(name)
    except ImageError:
        raise ConfigError(f"'{name}' is not an image format Pillow writes (png, webp, jpg, tiff, ...)") from None


def option(default: Any, help: str, **spec: Any) -> Any:
    """A settings field whose metadata is its :class:`Option` (named after the field)."""
    return field(default=default, metadata={"option": dict(spec, help=help)})


S = TypeVar("S", bound="RunSettings")


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """The options of every coding command that concern the run rather than the picture
    (listed after the picture's on every surface)."""

    device: str = option("auto", "Where the networks run (entropy coding always runs on the CPU).",
                         choices=DEVICES, example="cpu")
    runtime: str = option("auto", "What runs the diffusion stage's networks: onnx (ONNX Runtime on the CPU, "
                          "no torch needed), torch, or auto (torch for CUDA and the learned base, else onnx; "
                          "env CGDM_RUNTIME).", choices=RUNTIMES, example="onnx")
    threads: int | None = option(None, "Threads for the networks, the texture stage and the AV1 encoder [default: the cores "
                                 "this process may use].", low=1, high=1024, example=1)
    force: bool = option(False, "Overwrite the output file if it exists (never the input).", flag=True,
                         short="-f", example=True, not_on={"api": NO_FILE, "pillow": PILLOW_FILE})
    jobs: int | None = option(None, "Files coded at once, each in its own process [default: one per core, "
                              "as far as free memory allows].", low=1, high=256, short="-j", example=1,
                              not_on={"api": NO_JOBS, "pillow": NO_JOBS,
                                      "distributed": "--workers N or --scheduler set its parallelism: "
                                                     "the cluster's workers"})
    quiet: int = option(0, "No progress messages on stderr; notes of what an output loses (frames, alpha, "
                        "metadata) still show. -QQ: not those either.", count=True, low=0, high=2,
                        short="-Q", example=1, not_on={"api": SILENT, "pillow": PILLOW_SILENT})
    max_side: int | None = option(None, f"Refuse images (input or .cgdm) wider or taller than PX [default: "
                                  f"{MAX_DIM}, or env CGDM_MAX_SIDE].", low=1, high=MAX_DIM, metavar="PX",
                                  example=4096, not_on={"api": LIMITS_KW, "pillow": LIMITS_ENV})
    max_pixels: int | None = option(None, f"Refuse images (input or .cgdm) with more pixels than N; bounds "
                                    f"memory [default: {MAX_PIXELS}, or env CGDM_MAX_PIXELS].", low=1,
                                    high=MAX_PIXELS, metavar="N", example=2**24,
                                    not_on={"api": LIMITS_KW, "pillow": LIMITS_ENV})

    #: How errors name the settings (``what``: "encode", "decode") and the cross-option rules.
    what: ClassVar[str] = "run"

    @staticmethod
    def conflicts(settings: Mapping[str, Any], spell: Spell) -> None:
        """Raise ConfigError for options that contradict each other (none among the run's)."""

    def __post_init__(self) -> None:
        """Every value checked (a number given as an int where fractions are allowed stored
        as a float), then the combinations: one-line ConfigErrors naming the keywords."""
        values = {o.name: o.check(getattr(self, o.name)) for o in options_of(type(self))}
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self.conflicts(values, keyword)

    @classmethod
    def of(cls: type[S], given: Mapping[str, Any], spell: Spell | None = None) -> S:
        """The settings ``given`` by name (the rest at their defaults), with errors naming the
        options as ``spell`` spells them (``command_line``: ``-q``, ``--size``)."""
        check_settings(option_table(cls), given, cls.what)
        cls.conflicts(given, spell or keyword)
        return cls(**given)

    def values(self) -> dict[str, Any]:
        """Every setting by name (a shallow ``dataclasses.asdict``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class EncodeSettings(RunSettings):
    """The encoder's settings: the keywords of ``cgdm_codec.encode`` after the image, the
    ``cgdm encode`` options, the keywords of ``im.save`` and the distributed runner's options."""

    quality: int | None = option(None, f"Quality level: 1 = smallest file (~0.06 bpp) .. 6 = best (~1 bpp) "
                                 f"[default: {DEFAULT_QUALITY}].", low=1, high=6, short="-q", example=2)
    size: int | None = option(None, "Choose the quality whose file is the largest not over BYTES (instead "
                              "of -q).", low=1, metavar="BYTES", example=3000)
    bpp: float | None = option(None, "As --size, for a target of X bits per pixel.", low=0, open_low=True,
                               real=True, metavar="X", example=1.5)
    base: str | None = option(None, f"Base codec: {' or '.join(BASES)} [default: {registry.DEFAULT_BACKEND}, "
                              "or env CGDM_BASE].", choices=BASES, choices_from=registry.names, example="av1")
    base_only: bool = option(False, "Write a file without the diffusion stage (smaller, fast to decode, "
                             "less detail).", flag=True, example=True)
    lossless: bool = option(False, "Code the exact pixels (RGB, L, RGBA, LA; WebP's lossless coder, no "
                            "diffusion stage): decodes bit for bit to the input. Not with a quality, a size "
                            "target, --base or the diffusion stage's settings.", flag=True, example=True)
    texture_map: bool = option(False, "Add the texture map (tens of bytes: how much fine detail the "
                               "original had per 64-px block): a decode at --realism above 0 then draws "
                               "that much texture, none on smooth areas. Up to 4.2 MP (any size with "
                               "--effort max) the encoder fits it to the realism decode (a third to a half "
                               "more encode time; 2-3x at 8-24 MP). The fidelity decode (realism 0) never "
                               "reads it.", flag=True, example=True)
    diffusion: bool = option(False, "Always write the diffusion stage, even where the encoder's objective "
                             "scores the base-only decode better.", flag=True, example=True)
    effort: str = option("default", "How hard the encoder works: the AV1 speed (8; 3, or 4 above 4.2 MP; "
                         "2) and, for the diffusion stage, its search for the syntax and seed: fast and "
                         "default = one pass of the syntax encoder, and both score the diffusion-or-not "
                         "decision on a decode (default on up to 12 tiles' worth of pixels, fast 4); max = "
                         "the paper's 250 fine-tuning iterations and 4 seeds.", choices=EFFORTS,
                         example="fast")
    seed: int = option(0, "Noise seed the decoder's diffusion starts from (the first one tried when "
                       "searching seeds).", low=0, high=2**32 - 1, example=7)
    steps: int | None = option(None, "Sampler steps the decoder should run [default: the newest "
                               "decoder's, 1].", low=1, high=255, example=2)
    av1_quality: int | None = option(None, "AV1 base: Pillow's AVIF quality 0..100 instead of -q (a "
                                     "fine-grained rate).", low=0, high=100, example=40)
    finetune_iters: int | None = option(None, "Override the effort's number of per-image fine-tuning "
                                        "iterations.", low=0, high=100000, example=0)
    seeds: int | None = option(None, "Override the effort's number of noise seeds tried (each costs one "
                               "decode).", low=1, high=1024, example=1)
    finetune: bool = option(True, "Skip the per-image fine-tuning (seeds are still searched).", flag=True,
                            cli="--no-finetune", example=False)
    metadata: str = option("all", "Which of the input's ICC profile, EXIF and XMP the file carries.",
                           validate=_metadata, metavar="all|none|icc,exif,xmp", example="icc,xmp")
    strip: bool = option(False, "Carry no metadata (same as --metadata none).", flag=True, example=True)

    what: ClassVar[str] = "encode"

    @staticmethod
    def conflicts(settings: Mapping[str, Any], spell: Spell) -> None:
        encode_conflicts(settings, spell)

    @property
    def level(self) -> int:
        """The quality level of a file coded at a level (not to a size target)."""
        return DEFAULT_QUALITY if self.quality is None else self.quality

    @property
    def kept_metadata(self) -> str:
        """The ``imageio.select_metadata`` spec: ``strip`` wins over ``metadata``."""
        return "none" if self.strip else self.metadata

    @property
    def diffusion_stage(self) -> bool | None:
        """Whether the file gets the diffusion stage: False with ``base_only``, True with
        ``diffusion``, None where the encoder decides (its weights installed, and its decode
        scoring better)."""
        return False if self.base_only else (True if self.diffusion else None)


@dataclass(frozen=True, kw_only=True)
class DecodeSettings(RunSettings):
    """The decoder's settings: ``cgdm_codec.decode``'s keywords, the ``cgdm decode`` options,
    ``im.decode_options`` of the Pillow plugin and the distributed runner's options."""

    fmt: str | None = option(None, "Output format for standard output, devices and folders (png, webp, jpg, "
                             "tiff, ...) [default: png]; with -o NAME.EXT it must agree with the extension.",
                             validate=_format, cli="--format", metavar="EXT", example="webp",
                             not_on={"api": WRITER, "pillow": WRITER})
    base_only: bool = option(False, "Skip the diffusion stage: the base codec's reconstruction (a fast "
                             "preview); not with --steps or --realism, which set that stage.", flag=True,
                             example=True)
    steps: int | None = option(None, "Override the file's number of sampler steps (fewer is faster).", low=1,
                               high=255, example=2)
    realism: float = option(0.0, "The decode-time dial of the same file: 0 = the fidelity decode; above 0 the "
                            "realism network of the file's weights runs and the texture energy the decode "
                            "lacks is put back, by strengthening the fine detail it kept and seeded grain "
                            "where it kept none (sharper and more textured, less faithful to the exact "
                            "pixels: 1 costs ~1.1-1.3 dB PSNR at levels 1-3, 0.5 ~0.5-0.7 dB for nearly the "
                            "same realism).", low=0, high=1, real=True, metavar="0..1", example=0.5)
    strip: bool = option(False, "Write no ICC profile, EXIF or XMP into the output.", flag=True, example=True)
    fast: bool = option(False, "Run the diffusion stage with a narrower network distilled from the file's "
                        "(about half the network time, a little less detail restored; not bit for bit the "
                        "file's own decode). Files whose weights have no such network, and --realism above 0, "
                        "decode as without it.", flag=True, example=True)
    precision: str | None = option(None, "The diffusion stage's network arithmetic on ONNX Runtime: float32 "
                                   "(the reference decode) or int8 (the denoise network quantised: about a "
                                   "third less network time on CPUs with AVX-512 VNNI, within ~0.01 dB PSNR "
                                   "of float32, not bit-exact; weights without an int8 graph run float32; "
                                   "the torch runtime ignores it) [default: float32, or env CGDM_PRECISION].",
                                   choices=PRECISIONS, example="int8")
    png_level: int = option(PNG_LEVEL, "zlib level of PNG outputs (9: smallest file, several times slower to "
                            "write).", low=0, high=9, example=6, not_on={"api": WRITER, "pillow": WRITER})
    output_quality: int | None = option(None, "Quality of JPEG, WebP and AVIF outputs [default: Pillow's: 75 "
                                        "for JPEG and AVIF, 80 for WebP].", low=0, high=100, metavar="0..100",
                                        example=50, not_on={"api": WRITER, "pillow": WRITER})

    what: ClassVar[str] = "decode"

    @staticmethod
    def conflicts(settings: Mapping[str, Any], spell: Spell) -> None:
        decode_conflicts(settings, spell)


RUN_FIELDS = tuple(f.name for f in fields(RunSettings))


@lru_cache(maxsize=None)
def options_of(cls: type[RunSettings]) -> tuple[Option, ...]:
    """The options of a settings class, from its fields: the picture's first, then the run's."""
    ordered = sorted(fields(cls), key=lambda f: f.name in RUN_FIELDS)  # stable: class order within each
    return tuple(Option(f.name, f.default, **f.metadata["option"]) for f in ordered)


def option_table(cls: type[RunSettings]) -> dict[str, Option]:
    """``options_of(cls)`` by name."""
    return {o.name: o for o in options_of(cls)}


def surface_options(cls: type[RunSettings], surface: str) -> tuple[Option, ...]:
    """The options of a settings class that ``surface`` offers: each surface builds its own
    from this, so a new field reaches all four (unless its ``not_on`` says why not)."""
    return tuple(o for o in options_of(cls) if o.offered_on(surface))


#: The run's options (``RunSettings``), shared by both commands.
RUN_OPTIONS = options_of(RunSettings)
ENCODE_OPTIONS: tuple[Option, ...] = options_of(EncodeSettings)
DECODE_OPTIONS: tuple[Option, ...] = options_of(DecodeSettings)

ENCODE_OPTION = option_table(EncodeSettings)
DECODE_OPTION = option_table(DecodeSettings)
RUN_OPTION = option_table(RunSettings)
DEVICE, RUNTIME, THREADS, FORCE, JOBS, QUIET, MAX_SIDE, MAX_PIXELS = RUN_OPTIONS

#: The settings a lossless encode has no use for: each chooses a rate or a base codec, or
#: shapes the diffusion stage a lossless file does not have. Giving one with ``lossless`` is
#: a contradiction (ConfigError; a usage error on the command lines), not silently ignored.
LOSSLESS_CONFLICTS = ("quality", "size", "bpp", "base", "av1_quality", "diffusion", "seed", "steps",
                      "finetune_iters", "seeds", "finetune", "texture_map")
#: The settings that each choose the rate: one at most.
RATE_OPTIONS = ("quality", "size", "bpp", "av1_quality")

Spell = Callable[[Option], str]


def keyword(option: Option) -> str:
    """How the API and the Pillow plugin name a setting in an error: its keyword."""
    return option.name


def command_line(option: Option) -> str:
    """How the command lines name a setting in an error: ``-q``, ``--size``."""
    return option.spelled


def _given(table: Mapping[str, Option], settings: Mapping[str, Any], names: tuple[str, ...]) -> list[Option]:
    """The options among ``names`` set away from their defaults."""
    return [table[n] for n in names if n in settings and settings[n] != table[n].default]


def check_settings(table: Mapping[str, Option], settings: Mapping[str, Any], what: str) -> None:
    """Each setting against its option; a name the table lacks is a ConfigError too (a typo
    must not be ignored)."""
    for name, value in settings.items():
        if name not in table:
            raise ConfigError(f"{name!r} is not a{'n' if what[0] in 'aeiou' else ''} {what} option "
                              f"(the options: {', '.join(table)})")
        table[name].check(value)


def check_encode(settings: Mapping[str, Any], spell: Spell = keyword) -> None:
    """Every value of encode settings given by name, then their combinations
    (:func:`encode_conflicts`); a one-line ConfigError naming the options as ``spell`` spells
    them. ``EncodeSettings.of`` runs it and builds the settings."""
    check_settings(ENCODE_OPTION, settings, "encode")
    encode_conflicts(settings, spell)


def encode_conflicts(settings: Mapping[str, Any], spell: Spell) -> None:
    """The combinations that contradict each other: two rate choices, ``base_only`` with
    ``diffusion``, ``av1_quality`` with a base without it, ``lossless`` with what it has no
    use for."""
    base = settings.get("base")
    if settings.get("av1_quality") is not None and base and registry.backend(base).fine_range is None:
        raise ConfigError(f"{spell(ENCODE_OPTION['av1_quality'])} needs the AV1 base; {base} has levels only")
    if settings.get("lossless"):
        given = _given(ENCODE_OPTION, settings, LOSSLESS_CONFLICTS)
        if given:
            raise ConfigError(f"{spell(ENCODE_OPTION['lossless'])} codes the exact pixels without a diffusion "
                              f"stage: {', '.join(map(spell, given))} cannot be given with it")
    rates = _given(ENCODE_OPTION, settings, RATE_OPTIONS)
    if len(rates) > 1:
        raise ConfigError(f"{' and '.join(map(spell, rates))} each choose the quality: give one")
    for other in ("diffusion", "texture_map"):
        if settings.get("base_only") and settings.get(other):
            raise ConfigError(f"{spell(ENCODE_OPTION['base_only'])} and {spell(ENCODE_OPTION[other])} "
                              "contradict each other: give one")


def check_decode(settings: Mapping[str, Any], spell: Spell = keyword) -> None:
    """Every value of decode settings given by name, then :func:`decode_conflicts`."""
    check_settings(DECODE_OPTION, settings, "decode")
    decode_conflicts(settings, spell)


def decode_conflicts(settings: Mapping[str, Any], spell: Spell) -> None:
    """``steps`` and ``realism`` with ``base_only``: they set the stage it skips, so together
    they contradict each other rather than being silently ignored."""
    if not settings.get("base_only"):
        return
    for given in _given(DECODE_OPTION, settings, ("realism", "steps")):
        raise ConfigError(f"{spell(given)} sets the diffusion stage, which "
                          f"{spell(DECODE_OPTION['base_only'])} skips: give one")


def decode_precision(value: str | None) -> str:
    """The precision a decode runs in: ``value``, else env ``CGDM_PRECISION``, else float32."""
    import os

    return value or os.environ.get("CGDM_PRECISION") or "float32"


def precision_context(value: str | None) -> Any:
    """A context in which a decode runs at ``decode_precision(value)`` (the runtime loads
    only when that is not float32: a float32 or base-only decode imports nothing more)."""
    import contextlib

    chosen = decode_precision(value)
    if chosen not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {chosen!r}")
    if chosen == "float32":
        return contextlib.nullcontext()
    from .runtime import precision_scope

    return precision_scope(chosen)


__all__ = ["Option", "EncodeSettings", "DecodeSettings", "RunSettings", "option", "options_of",
           "surface_options",
           "ENCODE_OPTIONS", "DECODE_OPTIONS", "ENCODE_OPTION", "DECODE_OPTION", "SURFACES",
           "LOSSLESS_CONFLICTS", "check_encode", "check_decode",
           "PRECISIONS", "decode_precision", "precision_context"]
