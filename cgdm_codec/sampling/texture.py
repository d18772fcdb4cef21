"""Texture synthesis, the last stage of a decode at realism > 0: seeded noise where detail was lost.

The networks are restorers: what the bits do not describe they leave smooth, so a decode
keeps only part of the original's fine detail (the finest band's energy 0.45–0.65 of the
original's at levels 1–3 on sunhays80). This stage puts back the *amount* of detail a
region lost, as noise, the way AV1's film grain synthesis and audio codecs' noise
substitution do: per pixel and per fine band, a fitted model predicts the energy the
decode lacks from its own local *texture* energies (``texture_energy``) and the base
quantiser, and that energy is added (scaled by the realism setting): first by amplifying
the band the decode kept, which costs a fraction of noise's squared error, then as luma
noise filtered to that band where the decode kept too little (``band_texture``). Flat
regions and thin edges have no texture energy and stay clean; textured regions get texture
of their own scale.

The model (``TextureConfig``) is fitted on training photos by ``cgdm_lab/train/texture.py`` and lives
in the realism weights' manifest. The noise is part of the format: a periodic luma patch
drawn from the file's seed by the counter-based generator of ``sampling.noise`` under a
derived key (``texture_seed``), so every decode of a file at a given realism is the same
picture. Bands are non-decimated ("à trous") so that the stage runs tile by tile with
bounded memory and gives the same pixels as a whole-image pass.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..cores import granted_cores, in_order
from .arrays import clip_
from .noise import MASK64, noise_patch

#: Rec. 601 luma weights: the noise is luma only, like film grain (chroma noise looks false).
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: Mixed into the file's seed so the texture noise is a stream apart from x_T's.
TEXTURE_KEY = 0x5445585455524531  # "TEXTURE1"
AMPLIFY_EPS = 1e-6  # a band's mean square below this counts as kept-nothing (8-bit steps are 1.5e-5)
#: The stages' tiles (rows, about as many columns: ``tile_columns``): the ~20 planes a tile's
#: synthesis makes stay in a core's caches, where those of a whole strip of a 6000-px-wide photo went to memory at every pass
#: (the map-less stage at 24 MP in 0.4x the time, the same values: ``docs/realism.md``).
TILE_ROWS, TILE_COLS = 256, 1024


@dataclass(frozen=True)
class TextureConfig:
    """The fitted model: per synthesised band, ``coef`` weights the energies of ``features``
    to give the energy (mean square) the decode lacks there in that band; its square root
    times the band's gain (``gains``: calibrated so that band energy matches the originals'
    on the training photos at realism 1) is the RMS that ``band_texture`` adds."""
    coef: tuple[tuple[float, ...], ...] = ((0.0,) * 5, (0.0,) * 5)
    gain: tuple[float, ...] = (1.0, 1.0)
    #: Per band, the gain's change per unit of qindex / 255: the linear model under-predicts
    #: what the coarsest levels lack, so one gain per band cannot serve every level.
    gain_q: tuple[float, ...] = (0.0, 0.0)
    window: int = 5  # side of the box over which local energy is taken
    erode: int = 9  # side of the box whose minimum of it is taken (``texture_energy``)
    period: int = 1024  # side of the seeded luma noise patch, tiled over the image
    #: Per band, the share of the energy to add that comes from amplifying the decode's own
    #: band (the rest is noise), its gain at most ``max_gain``: detail the decode half-kept
    #: is restored at a fraction of noise's cost in squared error (``band_texture``).
    amplify: tuple[float, ...] = (0.0, 0.0)
    max_gain: float = 2.0
    #: No texture within ``EDGE_RADIUS`` px of a strong edge (``edge_mask``); False in models
    #: fitted before it existed, whose pictures stay as they were.
    edge_mask: bool = False
    fitted: dict[str, Any] = field(default_factory=dict, compare=False)  # how (provenance)

    @property
    def bands(self) -> int:
        return len(self.coef)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["coef"] = [list(c) for c in self.coef]
        d["gain"] = list(self.gain)
        d["gain_q"] = list(self.gain_q)
        d["amplify"] = list(self.amplify)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TextureConfig":
        return cls(coef=tuple(tuple(float(v) for v in c) for c in d["coef"]),
                   gain=tuple(float(g) for g in d["gain"]),
                   gain_q=tuple(float(g) for g in d.get("gain_q", (0.0,) * len(d["gain"]))),
                   window=int(d["window"]), erode=int(d["erode"]),
                   period=int(d["period"]), amplify=tuple(float(a) for a in d.get("amplify", (0.0,) * len(d["coef"]))),
                   max_gain=float(d.get("max_gain", 2.0)), edge_mask=bool(d.get("edge_mask", False)),
                   fitted=dict(d.get("fitted", {})))

    def gains(self, qindex: int) -> tuple[float, ...]:
        """Each band's gain at this quantiser (``gain`` alone where ``gain_q`` is zero, as in
        models fitted before it existed), never below zero."""
        q = qindex / 255.0
        return tuple(g if s == 0.0 else max(0.0, g + s * q) for g, s in zip(self.gain, self.gain_q))


def texture_seed(seed: int) -> int:
    return (seed ^ TEXTURE_KEY) & MASK64


@functools.lru_cache(maxsize=2)
def _patch(seed: int, period: int) -> np.ndarray:
    return noise_patch(texture_seed(seed), 1, period)[0]


def _taps(p: np.ndarray, d: int, n: int, axis: int) -> np.ndarray:
    """(1, 4, 6, 4, 1) / 16 along ``axis`` of a padded array, taps ``d`` apart, ``n`` outputs:
    symmetric pairs summed first, in place, so a strip makes two temporaries, not ten."""
    def tap(k: int) -> np.ndarray:
        return p[:, k * d:k * d + n] if axis == 1 else p[k * d:k * d + n]

    out = tap(0) + tap(4)
    pair = tap(1) + tap(3)
    pair *= np.float32(4.0)
    out += pair
    np.multiply(tap(2), np.float32(6.0), out=pair)
    out += pair
    out *= np.float32(1.0 / 16.0)
    return out


def _blur(x: np.ndarray, dilation: int) -> np.ndarray:
    """The separable binomial low-pass of a 2-D array with taps ``dilation`` apart, edges replicated."""
    r = 2 * dilation
    h, w = x.shape
    rows = _taps(np.pad(x, ((0, 0), (r, r)), mode="edge"), dilation, w, 1)
    return _taps(np.pad(rows, ((r, r), (0, 0)), mode="edge"), dilation, h, 0)


def atrous_bands(y: np.ndarray, levels: int) -> list[np.ndarray]:
    """Non-decimated band-pass images, finest first: y - G1 y, G1 y - G2 G1 y, ..."""
    bands = []
    for k in range(levels):
        low = _blur(y, 1 << k)
        bands.append(y - low)
        y = low
    return bands


def _box_mean(x: np.ndarray, side: int) -> np.ndarray:
    """Mean over a side x side box centred on each pixel (edges replicated): separable sums
    of shifted copies in float32 (the boxes are small; 3x faster than running sums in float64)."""
    r = side // 2
    h, w = x.shape
    p = np.pad(x, ((0, 0), (r, r)), mode="edge")
    rows = p[:, 0:w].copy()
    for k in range(1, side):
        rows += p[:, k:k + w]
    p = np.pad(rows, ((r, r), (0, 0)), mode="edge")
    out = p[0:h].copy()
    for k in range(1, side):
        out += p[k:k + h]
    out *= np.float32(1.0 / (side * side))
    return out


def _window_min(p: np.ndarray, side: int, n: int, axis: int) -> np.ndarray:
    """The minimum of every ``side`` consecutive entries along ``axis`` of ``p`` (``n``
    windows, ``p`` holding n + side - 1): minima of windows doubling in length, then two
    overlapping ones, so log2(side) + 1 passes instead of side - 1. A minimum is exact in
    any order, so this gives the same values as a pass per tap."""
    def part(a: np.ndarray, start: int, length: int) -> np.ndarray:
        return a[:, start:start + length] if axis == 1 else a[start:start + length]

    span, m = 1, p
    while 2 * span <= side:
        length = m.shape[axis] - span
        m = np.minimum(part(m, 0, length), part(m, span, length))
        span *= 2
    if span == side:
        return part(m, 0, n)
    return np.minimum(part(m, 0, n), part(m, side - span, n))


def _erode(x: np.ndarray, side: int) -> np.ndarray:
    """The minimum over a side x side box centred on each pixel (edges replicated)."""
    r = side // 2
    h, w = x.shape
    rows = _window_min(np.pad(x, ((0, 0), (r, r)), mode="edge"), side, w, 1)
    return _window_min(np.pad(rows, ((r, r), (0, 0)), mode="edge"), side, h, 0)


#: Texture stays this far (px) from strong edges, fading from a luma gradient of EDGE_LOW to
#: EDGE_HIGH (in [0, 1] units per pixel: 16 and 48 levels of 8 bits).
EDGE_RADIUS = 3
EDGE_LOW, EDGE_HIGH = 16 / 255, 48 / 255


def edge_mask(luma: np.ndarray) -> np.ndarray:
    """1 away from strong edges, falling to 0 within ``EDGE_RADIUS`` px of one (luma gradient
    over ``EDGE_LOW``..``EDGE_HIGH`` per pixel): texture drawn across an edge reads as a halo
    or speckle along it, and what a softened edge lacks is sharpness, not grain."""
    gy, gx = np.gradient(luma)
    g = -_erode(-np.hypot(gx, gy).astype(np.float32), 2 * EDGE_RADIUS + 1)  # the local maximum
    return clip_((np.float32(EDGE_HIGH) - g) / np.float32(EDGE_HIGH - EDGE_LOW), 0.0, 1.0)


def local_energy(band: np.ndarray, cfg: "TextureConfig") -> np.ndarray:
    """A band's local mean square over ``cfg.window``."""
    return np.maximum(_box_mean(band * band, cfg.window), 0.0)


def texture_energy(band: np.ndarray, level: int, cfg: "TextureConfig",
                   energy: np.ndarray | None = None) -> np.ndarray:
    """Band ``level``'s (0 = finest) local mean square, then its local minimum over a box
    that grows with the band's scale: area-filling texture keeps its energy, a thin edge or
    line (which the decode keeps, and which lacks sharpness rather than grain) loses it, so
    no noise fringes an edge."""
    return _erode(local_energy(band, cfg) if energy is None else energy, cfg.erode * (level + 1) | 1)


class Analysis(NamedTuple):
    """What the decode's luma tells the model: its bands, their local and texture energies."""
    bands: list[np.ndarray]
    energy: list[np.ndarray]
    inputs: list[np.ndarray]  # the model's five input planes, see ``features``


def band_energies(decode_luma: np.ndarray, levels: int,
                  cfg: "TextureConfig") -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The finest ``levels`` bands, each band's local mean square and its texture energy."""
    bands = atrous_bands(decode_luma, levels)
    energy = [local_energy(b, cfg) for b in bands]
    return bands, energy, [texture_energy(b, k, cfg, e) for k, (b, e) in enumerate(zip(bands, energy))]


def analyse(decode_luma: np.ndarray, qindex: int, cfg: "TextureConfig") -> Analysis:
    bands, energy, tex = band_energies(decode_luma, 3, cfg)
    q = np.float32(qindex / 255.0)
    return Analysis(bands, energy, [*tex, tex[0] * q, tex[1] * q])


def features(decode_luma: np.ndarray, qindex: int, cfg: "TextureConfig") -> np.ndarray:
    """The model's inputs per pixel (H, W, 5), all energies, so that a flat region (no
    energy) is predicted to lack none: E_1, E_2, E_3, E_1 q, E_2 q with E_k the decode's
    ``texture_energy`` of band k and q = qindex / 255."""
    return np.stack(analyse(decode_luma, qindex, cfg).inputs, axis=-1)


def predicted(inputs: list[np.ndarray], coef: tuple[float, ...]) -> np.ndarray:
    """The model's linear prediction, sum of coef_k x_k, term by term in float32: each pixel
    gets one value whatever part of the image is computed (a BLAS product's rounding
    depends on where a pixel falls in its array, so tiles would differ from strips)."""
    out = inputs[0] * np.float32(coef[0])
    for x, c in zip(inputs[1:], coef[1:]):
        out += x * np.float32(c)
    return out


@functools.lru_cache(maxsize=4)
def band_noise_rms(levels: int) -> tuple[float, ...]:
    """The RMS of each band of unit white noise (the norms of the bands' impulse responses)."""
    size = 8 * (1 << levels) + 1
    delta = np.zeros((size, size), dtype=np.float32)
    delta[size // 2, size // 2] = 1.0
    return tuple(float(np.sqrt((b.astype(np.float64) ** 2).sum())) for b in atrous_bands(delta, levels))


def noise_rows(seed: int, period: int, top: int, height: int, width: int, left: int = 0) -> np.ndarray:
    """Rows top..top+height, columns left..left+width of the periodic noise field (anchored
    at the image's origin)."""
    patch = _patch(seed, period)
    rows = np.arange(top, top + height) % period
    cols = np.arange(left, left + width) % period
    return patch[np.ix_(rows, cols)]


class Span(NamedTuple):
    """Entries start..start+n of one axis of an image (a tile's rows or columns), computed on
    lo..hi: with the margin the stage reads around them, cut at the image's ends."""
    start: int
    n: int
    lo: int
    hi: int

    @property
    def own(self) -> slice:
        """The span's entries in the image."""
        return slice(self.start, self.start + self.n)

    @property
    def inner(self) -> slice:
        """The span's entries within lo..hi."""
        return slice(self.start - self.lo, self.start - self.lo + self.n)


def tile_columns(width: int, multiple: int = 1) -> int:
    """Columns per tile: the width cut into parts of about ``TILE_COLS`` (as many as are
    nearest), of equal width rounded up to a ``multiple``: a part much narrower than its
    margins would cost more than it saves."""
    parts = max(1, round(width / TILE_COLS))
    return -(-width // (parts * multiple)) * multiple


def spans(length: int, step: int, margin: int) -> list[Span]:
    """An axis of ``length`` cut every ``step`` entries, each part with ``margin`` around it."""
    return [Span(s, min(step, length - s), max(0, s - margin), min(length, s + step + margin))
            for s in range(0, length, step)]


class BandTerm(NamedTuple):
    """One synthesised band: the RMS the decode lacks there, the band-filtered noise with its
    RMS for unit white noise, and the decode's own band with its local mean square."""
    missing: np.ndarray
    noise: np.ndarray
    unit: float
    band: np.ndarray
    energy: np.ndarray


def band_terms(decode_luma: np.ndarray, noise: np.ndarray, qindex: int, cfg: TextureConfig) -> list[BandTerm]:
    a = analyse(decode_luma, qindex, cfg)
    unit = band_noise_rms(cfg.bands)
    return [BandTerm(np.sqrt(np.maximum(predicted(a.inputs, coef), 0.0)), noise_band,
                     unit[k], a.bands[k], a.energy[k])
            for k, (coef, noise_band) in enumerate(zip(cfg.coef, atrous_bands(noise, cfg.bands)))]


def band_texture(term: BandTerm, gain: float, amplify: float, max_gain: float) -> np.ndarray:
    """One band's texture at realism 1: energy (gain x missing)^2 added, a share ``amplify``
    of it by scaling the decode's band by a (at most ``max_gain``), the rest as noise.

    Why amplify: if the decode is the expected picture given the bits, its error is
    uncorrelated with it, so scaling its band by a costs (a - 1)^2 E in squared error for
    (a^2 - 1) E of energy, where noise costs all the energy it adds (a = 1.4 doubles E at
    0.17 E). Where the decode kept nothing of a band (E = 0), only noise can add any."""
    if amplify <= 0.0:
        return (gain / term.unit) * term.missing * term.noise
    return amplified(term, np.square(np.float32(gain) * term.missing), amplify, max_gain)


def amplified(term: BandTerm, add: np.ndarray, amplify: float, max_gain: float) -> np.ndarray:
    """Energy ``add`` (per pixel) put into one band: a share ``amplify`` of it by scaling the
    decode's band by a (at most ``max_gain``), the rest as the band's noise."""
    a = np.minimum(np.sqrt(1.0 + np.float32(amplify) * add / (term.energy + np.float32(AMPLIFY_EPS))),
                   np.float32(max_gain))
    out = (a - 1.0) * term.band
    out += np.sqrt(np.maximum(add - (a * a - 1.0) * term.energy, 0.0)) * term.noise * np.float32(1.0 / term.unit)
    return out


def texture_of(terms: list[BandTerm], cfg: TextureConfig, qindex: int) -> np.ndarray:
    """The luma texture at realism 1 from the bands' terms (``band_terms``)."""
    gain = cfg.gains(qindex)
    out = band_texture(terms[0], gain[0], cfg.amplify[0], cfg.max_gain)
    for k, term in enumerate(terms[1:], start=1):
        out += band_texture(term, gain[k], cfg.amplify[k], cfg.max_gain)
    return out


def synthesis(decode_luma: np.ndarray, noise: np.ndarray, qindex: int, cfg: TextureConfig) -> np.ndarray:
    """The luma texture to add at realism 1, for a whole image or a strip with margins."""
    tex = texture_of(band_terms(decode_luma, noise, qindex, cfg), cfg, qindex)
    if cfg.edge_mask:
        tex *= edge_mask(decode_luma)
    return tex


def margin(cfg: TextureConfig) -> int:
    """Rows a strip needs on each side for its pixels to equal a whole-image pass."""
    return sum(2 << k for k in range(3)) + cfg.window // 2 + (3 * cfg.erode | 1) // 2 + 2  # blurs, box, minimum


def add_texture(rgb: np.ndarray, seed: int, qindex: int, realism: float, cfg: TextureConfig,
                workers: int | None = None) -> np.ndarray:
    """Add the synthesised texture to a (3, H, W) float32 decode in [0, 1], in place, tile by
    tile. Each tile reads only the luma of the decode before any tile changed it, with
    ``margin`` around it, so tiles of any size give the whole-image pass's values:
    ``workers`` threads (default: the granted cores; numpy releases the interpreter lock in
    its loops) synthesise tiles side by side, one each ahead of the one being added, which
    are added in order."""
    if realism <= 0.0:
        return rgb
    _, h, w = rgb.shape
    m = margin(cfg)
    luma = np.tensordot(LUMA, rgb, axes=1)  # of the decode before any tile is changed
    workers = max(1, granted_cores() if workers is None else workers)
    tiles = [(r, c) for r in spans(h, TILE_ROWS, m) for c in spans(w, tile_columns(w), m)]

    def synthesise(tile: tuple[Span, Span]) -> np.ndarray:
        r, c = tile
        noise = noise_rows(seed, cfg.period, r.lo, r.hi - r.lo, c.hi - c.lo, left=c.lo)
        return synthesis(luma[r.lo:r.hi, c.lo:c.hi], noise, qindex, cfg)[r.inner, c.inner]

    for (r, c), tex in zip(tiles, in_order(synthesise, tiles, workers)):
        rgb[:, r.own, c.own] += np.float32(realism) * tex
    return clip_(rgb, 0.0, 1.0)
