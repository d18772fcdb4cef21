"""The texture map: how much fine detail the original had, per 64-px block, and a texture
stage that puts back that much and no more.

Without side information the realism decode guesses the detail a region lost from the
decode alone (``sampling.texture``'s fitted model): it cannot tell a bokeh background from
a lawn the base codec flattened, so it grains the one and under-draws the other, and on
average it overshoots the original's band energy. The encoder knows the answer: per block
of ``BLOCK`` pixels and per fine band (the two finest "à trous" bands of the Rec. 601
luma, as in ``sampling.texture``), the original's mean square. It codes it relative to the
same measure of the base-only decode, which the decoder has too, in steps of ``STEP``
(log2 of energy): ``symbol = clip(round(log2(E_orig / E_base) / STEP) + OFFSET, 0, LEVELS - 1)``
with both energies floored at ``FLOOR`` (8-bit rounding noise), so flat blocks cost
almost nothing to code. The symbols' entropy coding is ``entropy_models.texture_map_coding``.

At realism R the decoder then adds, per block, the energy the decode lacks against that
target (none where the decode already has it), spread inside the block by ``spread_weight``:
the decode's coarser-band energy around each pixel, nothing where its finest band is flat
(an original's smooth part of a textured block: sky beside a roof, bokeh beside a leaf),
none within a few pixels of a strong edge (``edge_mask``: texture drawn across an edge
reads as a halo), and put in as ``texture.amplified`` does: first by amplifying the band
the decode kept, then as seeded band noise. Block values are interpolated bilinearly
between block centres so no block edge shows, and a block the map leaves without texture
takes none from its neighbours (``BLEND_POWER``). The constants were chosen on training
photos (``benchmarks/texture_map_calibration.py``).
"""

from __future__ import annotations

import numpy as np

from .texture import (LUMA, STRIP, Analysis, BandTerm, TextureConfig, box_mean, amplified, analyse,
                      atrous_bands, band_noise_rms, edge_mask, margin, noise_rows)

BLOCK = 64  # pixels per block side; the map codes it as log2 (6)
BLOCK_LOG2 = BLOCK.bit_length() - 1
BANDS = 2  # the two finest bands
STEP = 1.0  # log2 of energy per symbol
LEVELS = 8  # symbols 0..7: log2(E_orig / E_base) from 0 (or less) to 7 (or more)
OFFSET = 0  # the symbol of E_orig = E_base (or less: the decode never needs to lose energy)
FLOOR = 2e-6  # energies below this (8-bit rounding noise is 1.3e-6 in [0, 1] units) count as flat
#: Blocks the original kept this quiet (RMS 0.7 of an 8-bit level) get no texture: grain
#: there reads as noise on a smooth surface (sky, bokeh), whatever its energy.
QUIET = 4 * FLOOR
#: Where the weight sees texture in a block, the block's missing energy goes there alone (a
#: share spread evenly would grain the smooth part of a half-sky block); a block where it
#: sees none (a flat decode of a textured original) gets it evenly: the weight plus this
#: small constant energy decides between the two.
SPREAD = 2e-8
#: No pixel gets more than this many times its block's missing energy (a block where the
#: weight sees a few textured pixels would otherwise put all of it on them, as speckle).
PEAK = 8.0
#: The weight is the decode's energy of bands 2 and 3 over a box this wide: where an original
#: was smooth, the decode kept its coarser bands smooth too, while texture the base codec
#: thinned keeps some of them (on training photos it tells the original's flattest 16-px
#: blocks from the rest of their 64-px block better than the finest band's eroded energy,
#: which the realism network's own fine grain blurs: 0.75 against 0.64 ROC area).
WEIGHT_BOX = 15
#: ... and falls to 0 where the decode's finest band is flat (its eroded energy from
#: FLAT_HIGH down to FLAT_LOW: RMS 0.5 to 0.25 of an 8-bit level), where grain would be
#: added to an area the original had smooth.
FLAT_LOW, FLAT_HIGH = 1e-6, 4e-6
#: The bilinear blend of block values is raised to this power by the share of the blend
#: coming from blocks the map gives texture: a smooth block beside a textured one takes
#: (1/2)^4 of it at their common edge, not half.
BLEND_POWER = 4
#: The edge mask of the mapped stage fades texture out from a luma gradient of 8 to 32
#: levels per pixel (the unmapped stage's 16-48 let the amplified detail overshoot the
#: softer edges of a level-1 decode).
EDGE_LOW, EDGE_HIGH = 8 / 255, 32 / 255
#: Per band, the energy put in over the energy asked for: what a band gets is measured again
#: through the band's filter, which passes only part of it (amplified detail of the decode
#: lies low in the finest band; band-filtered noise of the second band spreads into the
#: first), so the finest band needs more in than it should show; more since the weight
#: keeps it off flat pixels, where a little energy shows most in mean |band|. At the
#: coarsest quantisers (``GAIN_QINDEX[1]``, level 1, and above) ``ENERGY_GAIN``; the finest
#: band's gain rises linearly to ``ENERGY_GAIN_FINE`` at ``GAIN_QINDEX[0]`` (level 3) and
#: below, where the decode's detail is finer and a constant gain left it short.
ENERGY_GAIN = (2.5, 2.0)
ENERGY_GAIN_FINE = (3.2, 2.0)
GAIN_QINDEX = (200, 249)
_BAND_MARGIN = 8  # rows a strip needs on each side for two à trous bands (radii 2 + 4)


def grid(height: int, width: int) -> tuple[int, int]:
    """Blocks down and across."""
    return -(-height // BLOCK), -(-width // BLOCK)


def _block_sums(x: np.ndarray, top: int, out: np.ndarray) -> None:
    """Add the sums of a strip's rows (starting at image row ``top``, a multiple of BLOCK)
    over each block into ``out`` (By, Bx)."""
    h, w = x.shape
    by, bx = -(-h // BLOCK), -(-w // BLOCK)
    pad = np.pad(x.astype(np.float64), ((0, by * BLOCK - h), (0, bx * BLOCK - w)))
    out[top // BLOCK: top // BLOCK + by] += pad.reshape(by, BLOCK, bx, BLOCK).sum(axis=(1, 3))


def _block_counts(height: int, width: int) -> np.ndarray:
    rows = np.minimum(BLOCK, height - BLOCK * np.arange(grid(height, width)[0]))
    cols = np.minimum(BLOCK, width - BLOCK * np.arange(grid(height, width)[1]))
    return np.outer(rows, cols).astype(np.float64)


def block_energies(luma: np.ndarray) -> np.ndarray:
    """(BANDS, By, Bx) float64: each block's mean square of each fine band of a luma plane
    in [0, 1], strip by strip (a 24 MP plane's bands are never held at once)."""
    h, w = luma.shape
    sums = np.zeros((BANDS, *grid(h, w)))
    for top in range(0, h, STRIP):
        lo, hi = max(0, top - _BAND_MARGIN), min(h, top + STRIP + _BAND_MARGIN)
        rows = slice(top - lo, top - lo + min(STRIP, h - top))
        for k, band in enumerate(atrous_bands(luma[lo:hi], BANDS)):
            _block_sums(np.square(band[rows]), top, sums[k])
    return sums / _block_counts(h, w)


def luma_of(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in [0, 1] of an (H, W, 3) uint8 image."""
    return np.tensordot(rgb.astype(np.float32), LUMA / np.float32(255.0), axes=([2], [0])).astype(np.float32)


def map_symbols(original: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The map's symbols (BANDS, By, Bx) from the original's and the base decode's block energies."""
    ratio = np.log2(np.maximum(original, FLOOR) / np.maximum(base, FLOOR))
    return np.clip(np.rint(ratio / STEP) + OFFSET, 0, LEVELS - 1).astype(np.int64)


def targets(base: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """The block energies the symbols say the original had; 0 where it had no more than the
    base decode or was quiet (``QUIET``): those blocks get nothing."""
    energy = np.maximum(base, FLOOR) * np.exp2((symbols - OFFSET) * STEP)
    return np.where((symbols > OFFSET) & (energy >= QUIET), energy, 0.0)


def _upsample(values: np.ndarray, top: int, height: int, width: int) -> np.ndarray:
    """Block values (By, Bx) interpolated bilinearly between block centres to the pixels of
    rows top..top+height (float32, clamped at the outer centres)."""
    def axis(n: int, start: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.clip((np.arange(start, start + size) + 0.5) / BLOCK - 0.5, 0, n - 1)
        i0 = np.floor(f).astype(np.int64)
        i1 = np.minimum(i0 + 1, n - 1)
        return i0, i1, (f - i0).astype(np.float32)

    by, bx = values.shape
    c0, c1, cw = axis(bx, 0, width)
    cols = values[:, c0] * (1 - cw) + values[:, c1] * cw  # (By, W)
    r0, r1, rw = axis(by, top, height)
    return (cols[r0] * (1 - rw)[:, None] + cols[r1] * rw[:, None]).astype(np.float32)


def energy_gain(qindex: int) -> tuple[float, ...]:
    """Each band's gain (``ENERGY_GAIN``) at this quantiser."""
    return tuple(float(np.interp(qindex, GAIN_QINDEX, (fine, coarse)))
                 for fine, coarse in zip(ENERGY_GAIN_FINE, ENERGY_GAIN))


def spread_weight(a: Analysis) -> np.ndarray:
    """Per pixel, how much of its block's missing energy it takes (relative to the block's
    mean): the decode's band 2 and 3 energy around it, 0 where its finest band is flat."""
    w = box_mean(a.energy[1] + a.energy[2], WEIGHT_BOX)
    w *= np.clip((a.features[:, :, 0] - np.float32(FLAT_LOW)) / np.float32(FLAT_HIGH - FLAT_LOW), 0.0, 1.0)
    return w


def add_mapped_texture(rgb: np.ndarray, seed: int, qindex: int, realism: float, cfg: TextureConfig,
                       target: np.ndarray) -> np.ndarray:
    """Add to a (3, H, W) float32 decode in [0, 1], in place, R times the luma texture that
    brings each block's fine bands to ``target`` (BANDS, By, Bx); two passes over strips:
    the decode's own block energies first, then the texture."""
    if realism <= 0.0:
        return rgb
    _, h, w = rgb.shape
    m = margin(cfg)
    luma = np.tensordot(LUMA, rgb, axes=1)
    strips = [(top, max(0, top - m), min(h, top + STRIP + m)) for top in range(0, h, STRIP)]

    def rows_of(top: int, lo: int) -> slice:
        return slice(top - lo, top - lo + min(STRIP, h - top))

    have = np.zeros((BANDS, *grid(h, w)))
    where = np.zeros(grid(h, w))
    for top, lo, hi in strips:
        rows, a = rows_of(top, lo), analyse(luma[lo:hi], qindex, cfg)
        for k in range(BANDS):
            _block_sums(np.square(a.bands[k][rows]), top, have[k])
        _block_sums(spread_weight(a)[rows], top, where)
    counts = _block_counts(h, w)
    have, where = have / counts, where / counts
    need = np.maximum(target - have, 0.0)
    textured = (target[0] > 0).astype(np.float64)
    unit, gain = band_noise_rms(cfg.bands), energy_gain(qindex)
    for top, lo, hi in strips:
        rows, a = rows_of(top, lo), analyse(luma[lo:hi], qindex, cfg)
        noise = atrous_bands(noise_rows(seed, cfg.period, lo, hi - lo, w), BANDS)
        n = rows.stop - rows.start
        keep = edge_mask(luma[lo:hi], EDGE_LOW, EDGE_HIGH)[rows]
        keep *= _upsample(textured, top, n, w) ** BLEND_POWER
        weight = spread_weight(a)[rows]
        share = 1.0 / (_upsample(where, top, n, w) + np.float32(SPREAD))
        tex = np.zeros((n, w), dtype=np.float32)
        for k in range(BANDS):
            lack = _upsample(need[k], top, n, w) * np.float32(gain[k])
            add = weight + np.float32(SPREAD)
            add *= lack * share
            np.minimum(add, np.float32(PEAK) * lack, out=add)
            add *= keep  # the share of pixels near strong edges is dropped, not moved elsewhere
            term = BandTerm(add, noise[k][rows], unit[k], a.bands[k][rows], a.energy[k][rows])
            tex += amplified(term, add, cfg.amplify[k] if cfg.amplify[k] > 0 else 1.0, cfg.max_gain)
        rgb[:, top:top + n] += np.float32(realism) * tex
    return np.clip(rgb, 0.0, 1.0, out=rgb)



def make_map(original: np.ndarray, base: np.ndarray) -> bytes:
    """The texture map record of an image (H, W, 3 uint8) given its base-only decode."""
    from ..entropy_models.texture_map_coding import encode_map

    symbols = map_symbols(block_energies(luma_of(original)), block_energies(luma_of(base)))
    return encode_map(symbols, BLOCK_LOG2, LEVELS)


def read_map(record: bytes, base: np.ndarray) -> np.ndarray:
    """The target block energies (BANDS, By, Bx) a texture map record says, given the base-only decode."""
    from ..entropy_models.texture_map_coding import decode_map

    reference = block_energies(luma_of(base))
    return targets(reference, decode_map(record, reference.shape, BLOCK_LOG2, LEVELS))
