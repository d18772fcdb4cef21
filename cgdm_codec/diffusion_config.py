"""Configuration of the CGDM decoder (U-Net, syntax stream, sampler) as plain dataclasses.

Kept free of torch so the container tools can read a weights manifest cheaply. The bundle
``CgdmConfig`` is written into the weights manifest: everything a decoder must agree on with
the encoder (architecture, noise schedule, tile geometry, noise period) is fixed by the
weights, and only the number of DDIM steps and the seed travel in each file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .config import NUM_QUALITIES


@dataclass(frozen=True)
class UNetConfig:
    """The consistency-guided U-Net.

    ``unshuffle`` folds r x r pixel blocks into channels before the first convolution, so
    every feature map is r^2 times smaller: the main lever for CPU speed.
    """

    inner: int = 64
    multipliers: tuple[int, ...] = (1, 2, 2, 3)
    depth: int = 2
    dropout: float = 0.2
    unshuffle: int = 1
    cond_mult: int = 4  # width of the condition vector, in units of ``inner``
    num_qualities: int = NUM_QUALITIES
    # What the base codec's condition is: "level" (a learned embedding of the level index,
    # the hyperprior base) or "qindex" (a smooth embedding of the AV1 quantiser 0..255, so
    # one network serves every fine-grained quality).
    condition: str = "level"
    # Whether the condition also carries a realism setting in [0, 1] (0: the fidelity decode,
    # 1: texture synthesised from the seeded noise), a decode-time dial of one network.
    realism: bool = False
    # Whether the pixel-shuffle head's output passes a fixed filter with a zero at the
    # Nyquist frequency (layers.nyquist): without it the head's four pixel phases paint a
    # one-pixel grid. False for every generation before cgdm-av1-5, so their files decode
    # exactly as before.
    nyquist_null: bool = False
    # Whether the diffusion encoder reads x_t. A one-step decode starts from pure noise,
    # which tells the network nothing about the photo: with False it sees x_t's expectation,
    # zero, on an unbounded canvas, so its features are one vector per level (``models.unet.Encoder`` with x None)
    # and a decode skips about a quarter of the network's arithmetic. True for every
    # generation before cgdm-av1-6.
    noise_input: bool = True
    # Explicit channel widths per level, overriding ``inner * multipliers`` (which keeps
    # naming the condition's width): a network distilled into fewer channels than its
    # teacher keeps the teacher's condition path. Absent from the manifests of weights
    # without it, so their configs (and decoder identities) are unchanged.
    widths: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.widths is not None and len(self.widths) != len(self.multipliers):
            raise ValueError(f"widths {self.widths} name {len(self.widths)} levels, "
                             f"multipliers {self.multipliers} {len(self.multipliers)}")

    @classmethod
    def paper(cls) -> "UNetConfig":
        """The paper's network (supplementary Table 1)."""
        return cls(inner=64, multipliers=(1, 2, 2, 3), depth=2, dropout=0.2, unshuffle=1)

    @classmethod
    def small(cls) -> "UNetConfig":
        """The shipped CPU network: half-resolution features, three levels, one block each."""
        return cls(inner=32, multipliers=(1, 2, 2), depth=1, dropout=0.0, unshuffle=2)

    @classmethod
    def small_av1(cls) -> "UNetConfig":
        """The shipped network for the AV1 base: ``small`` conditioned on the quantiser."""
        return cls(inner=32, multipliers=(1, 2, 2), depth=1, dropout=0.0, unshuffle=2, condition="qindex")

    @classmethod
    def tiny(cls) -> "UNetConfig":
        """A toy network for tests and smoke runs only."""
        return cls(inner=8, multipliers=(1, 2), depth=1, dropout=0.0, unshuffle=2, cond_mult=2)

    @property
    def channels(self) -> tuple[int, ...]:
        if self.widths is not None:
            return tuple(self.widths)
        return tuple(self.inner * m for m in self.multipliers)

    @property
    def cond_dim(self) -> int:
        return self.inner * self.cond_mult

    @property
    def multiple(self) -> int:
        """Tile sides must be multiples of this (unshuffle times one 2x per extra level)."""
        return self.unshuffle * 2 ** (len(self.multipliers) - 1)


@dataclass(frozen=True)
class RestorationConfig:
    """The one-pass restoration network (``models/restoration.py``), an alternative to the U-Net.

    Gated blocks at full resolution and below, blur-pool down, bilinear up, so no
    resampling step can paint a grid; the condition, the syntax fusion and the output
    residual on x~ are the U-Net's (its ``UNetConfig`` still gives the condition's kind and
    width). ``encoder_blocks`` run on x~ alone (the ``features`` role, once per tile);
    ``middle_blocks`` and ``decoder_blocks`` are conditioned on (t, q, s).
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)
    encoder_blocks: tuple[int, ...] = (1, 1, 2)  # per level above the deepest
    middle_blocks: int = 8  # at the deepest level
    decoder_blocks: tuple[int, ...] = (1, 1, 1)  # per level above the deepest
    expand: int = 2  # width of a block's gated branches, in units of its channels
    # x_t enters the full-resolution decoder through a zero-initialised 1x1 convolution, so
    # the seed can matter (a realism network) while the fidelity network learns to ignore it
    noise_input: bool = True
    nyquist_null: bool = False  # not needed: nothing in the network is phase-dependent

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.widths) - 1)


@dataclass(frozen=True)
class SyntaxConfig:
    """The neural syntax: a short integer vector sent beside the base bitstream.

    Symbols are clamped to [-symbol_range, symbol_range] before coding; ``widths`` are the
    channels of the generator's stride-2 stages, each of which is globally pooled.
    """

    length: int = 24
    widths: tuple[int, ...] = (32, 64, 96, 128)
    hidden: int = 128
    symbol_range: int = 63
    pool_tile: int = 512  # the encoder pools large images tile by tile to bound memory
    # Also give the MLP measured band statistics of x and x~ (quality.bands.band_means_torch):
    # conv features pooled over whole images barely differ between images at the start,
    # so a generator without them sends nearly the same symbols for every image.
    statistics: bool = False

    @property
    def alphabet(self) -> int:
        return 2 * self.symbol_range + 1


@dataclass(frozen=True)
class SamplerConfig:
    """Noise schedule, DDIM step count and the tile geometry (all sizes in image pixels).

    The defaults are the first decoder's settings (cgdm-small: fixed 256-px tiles, 9 steps)
    and must stay so: cgdm-small's manifest predates ``tiling`` and its files decode with
    the default ``"fixed"``, and the presets ``small``, ``paper`` and ``tiny`` take them.
    Weights exported since carry ``CURRENT_SAMPLER`` (or their own settings) in full in
    their manifests, which is what every decoder is built from.
    """

    train_timesteps: int = 1000
    schedule: str = "linear"  # "linear" (DDPM betas) or "cosine"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    steps: int = 9
    tile: int = 256
    overlap: int = 8
    noise_period: int = 256  # side of the seeded noise patch tiled over the whole image
    #: "fixed": every tile is ``tile`` px; "fitted": as few tiles of at most ``tile`` px as
    #: the overlap allows, each no larger than needed (sampling/tiling.py)
    tiling: str = "fixed"


#: The decoder settings weights exported from now on are trained and shipped with: fitted
#: tiles of at most 384 px and 5 DDIM steps (as good as 256-px tiles and 9 steps within
#: 0.01 dB / 0.0003 HaarPSI on sunhays80, for ~3x less work; docs/benchmarks.md).
CURRENT_SAMPLER = SamplerConfig(steps=5, tile=384, tiling="fitted")


@dataclass(frozen=True)
class CgdmConfig:
    unet: UNetConfig = field(default_factory=UNetConfig.small)
    syntax: SyntaxConfig = field(default_factory=SyntaxConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    # The network is the one-pass restoration network when set, else the U-Net; absent from
    # the manifests of U-Net weights, so their configs (and decoder identities) are unchanged.
    restoration: RestorationConfig | None = None

    @property
    def multiple(self) -> int:
        """Tile sides must be multiples of this: the network's, whichever it is."""
        return (self.restoration or self.unet).multiple

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unet"]["multipliers"] = list(self.unet.multipliers)
        if self.unet.widths is None:
            del d["unet"]["widths"]
        else:
            d["unet"]["widths"] = list(self.unet.widths)
        d["syntax"]["widths"] = list(self.syntax.widths)
        if self.restoration is None:
            del d["restoration"]
        else:
            d["restoration"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["restoration"].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CgdmConfig":
        unet = dict(d["unet"], multipliers=tuple(d["unet"]["multipliers"]))
        if unet.get("widths") is not None:
            unet["widths"] = tuple(unet["widths"])
        syntax = dict(d["syntax"], widths=tuple(d["syntax"]["widths"]))
        restoration = None
        if d.get("restoration") is not None:
            restoration = RestorationConfig(**{k: tuple(v) if isinstance(v, list) else v
                                               for k, v in d["restoration"].items()})
        return cls(UNetConfig(**unet), SyntaxConfig(**syntax), SamplerConfig(**d["sampler"]), restoration)

    @classmethod
    def preset(cls, name: str) -> "CgdmConfig":
        """``paper``, ``small`` / ``small-av1`` (shipped), ``restoration-av1`` (the one-pass candidate)
        or ``tiny`` / ``tiny-av1`` (tests only)."""
        if name == "paper":
            return cls(unet=UNetConfig.paper())
        if name == "small":
            return cls(unet=UNetConfig.small())
        if name == "small-av1":
            return cls(unet=UNetConfig.small_av1(), sampler=CURRENT_SAMPLER)
        if name == "tiny-av1":
            return cls(unet=replace(UNetConfig.tiny(), condition="qindex"),
                       syntax=SyntaxConfig(length=8, widths=(8, 16), hidden=16), sampler=CURRENT_SAMPLER)
        if name == "tiny":
            return cls(unet=UNetConfig.tiny(), syntax=SyntaxConfig(length=8, widths=(8, 16), hidden=16))
        if name == "restoration-av1":
            return replace(cls.preset("small-av1"), restoration=RestorationConfig())
        raise ValueError(f"unknown preset {name!r}; choose paper, small, small-av1, restoration-av1, "
                         "tiny or tiny-av1")
