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
target (none where the decode already has it), spread inside the block by the decode's own
texture energy (``texture.texture_energy``: eroded, so thin edges, which lack sharpness
rather than grain, get little), none within a few pixels of a strong edge (``edge_mask``:
texture drawn across an edge reads as a halo), and put in as ``texture.amplified`` does:
first by amplifying the band the decode kept, then as seeded band noise. Block values are
interpolated bilinearly between block centres so no block edge shows. The constants were
chosen on training photos (``benchmarks/texture_map_calibration.py``).

The symbols an encoder writes are its choice; the decoder only reads them. Measured on the
original, a block's energy is spread by the decoder over the whole block and, through the
blend, into its neighbours: on a block that is half sky, or beside one, the smooth part
gets grain. So an encoder that can run the realism network (``Preview``: the realism-1
decode before its texture stage) closes the loop (``fitted_symbols``, for photos up to
``FIT_MAX_PIXELS``, on windows above it, ``windowed_moves``, and whole at any size with
``--effort max``): it runs the stage with every block's symbols moved by each of
``DELTAS``, and keeps per block the move whose output is nearest the original, 16-px cell
by cell, in fine-band level over the block and its neighbours. The stage is split so that
each strip of the decode is analysed once (``_with_block_energies``), by the decoder and by
the fit for all its moves; only the synthesis (``_strip_textures``) runs per move.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..cores import granted_cores, in_order, return_freed_memory
from .arrays import clip_
from .texture import (LUMA, BandTerm, Span, TextureConfig, amplified, atrous_bands, band_energies,
                      band_noise_rms, edge_mask, margin, noise_rows, spans, tile_columns)

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
#: Where the model sees texture in a block, the block's missing energy goes there alone (a
#: share spread evenly would grain the smooth part of a half-sky block); a block where it
#: sees none (a flat decode of a textured original) gets it evenly: the model's estimate
#: plus this small constant energy (RMS 0.08 of an 8-bit level) decides between the two.
SPREAD = 2e-8
#: No pixel gets more than this many times its block's missing energy (a block where the
#: model sees a few textured pixels would otherwise put all of it on them, as speckle).
PEAK = 8.0
#: Per band, the energy put in over the energy asked for: what a band gets is measured again
#: through the band's filter, which passes only part of it (amplified detail of the decode
#: lies low in the finest band; band-filtered noise of the second band spreads into the
#: first), so the finest band needs more in than it should show.
ENERGY_GAIN = (1.8, 1.0)
_BAND_MARGIN = 8  # rows a strip needs on each side for two à trous bands (radii 2 + 4)
#: The encoder's closed loop: the moves of every block's symbols (both bands) it tries. Down
#: only: a move up (+1) also matched more cells' fine-band level, but the stage can add that
#: energy only as amplified detail and grain, and JPEG-sourced photos got speckle from it
#: (docs/realism.md, "The map fitted to the decoder").
DELTAS = (-3, -2, -1, 0)
_BAND_REACH = 2  # rows the finest band reads beyond a row (the 5-tap binomial low-pass)
#: Rows per strip of the mapped stage, whole rows of blocks. It holds two strips' analyses
#: (one ahead, for the blend; nine planes each, ~55 MB at 6000 px wide) and a strip's tiles
#: computed ahead. The pixels do not depend on it.
STAGE_STRIP = 4 * BLOCK
#: From a strip's analysis of this many bytes (~3600 px wide), the memory of each drawn strip
#: is handed back (``cores.return_freed_memory``): at 24 MP it kept the decode ~0.1 GB lower
#: for the same time; on narrower photos it only cost time (re-faulting pages).
TRIM_BYTES = 32 << 20
#: Rows of a plane measured at a time by ``block_energies``, and of the encoder's preview
#: turned into luma at a time.
STRIP = 512
CELL = 16  # pixels per cell side of the closed loop's comparison (``artefacts.flat_noise``'s blocks)
#: Added to both cells' mean |fine band| (8-bit levels) before their log ratio: rounding noise,
#: so that two flat cells compare as equal whatever their faint grain.
CELL_FLOOR = 0.5
#: Photos up to this many pixels (4.2 MP) get the closed loop. It costs a realism decode and
#: the stage's synthesis per move: a 0.67 MP encode took 1.32-1.36x the time of one without
#: the map, a 3.8 MP one 1.37-1.50x, 8-10 MP ones 1.9-3.3x and a 24 MP one about 2x (41 s
#: against ~21.5 s, most of it the realism decode; docs/realism.md), so larger photos are
#: fitted on windows (``fit_windows``: 1.3-1.6x) but under --effort max.
FIT_MAX_PIXELS = 1 << 22


def grid(height: int, width: int) -> tuple[int, int]:
    """Blocks down and across."""
    return -(-height // BLOCK), -(-width // BLOCK)


def _block_sums_of(x: np.ndarray) -> np.ndarray:
    """The sums of a plane whose first pixel is a block's corner over each of its blocks
    (float64; the blocks at its right and bottom ends may be partial)."""
    h, w = x.shape
    by, bx = -(-h // BLOCK), -(-w // BLOCK)
    pad = np.pad(x.astype(np.float64), ((0, by * BLOCK - h), (0, bx * BLOCK - w)))
    return pad.reshape(by, BLOCK, bx, BLOCK).sum(axis=(1, 3))


def _block_counts(height: int, width: int) -> np.ndarray:
    rows = np.minimum(BLOCK, height - BLOCK * np.arange(grid(height, width)[0]))
    cols = np.minimum(BLOCK, width - BLOCK * np.arange(grid(height, width)[1]))
    return np.outer(rows, cols).astype(np.float64)


def block_energies(image: np.ndarray) -> np.ndarray:
    """(BANDS, By, Bx) float64: each block's mean square of each fine band of a luma plane
    in [0, 1], strip by strip (a 24 MP plane's bands are never held at once). The encoder
    may pass an (H, W, 3) uint8 image instead: its luma is then taken a strip at a time too
    (``luma_of`` of each strip, equal to the whole image's to float32 rounding)."""
    h, w = image.shape[:2]
    sums = np.zeros((BANDS, *grid(h, w)))
    for top in range(0, h, STRIP):
        lo, hi = max(0, top - _BAND_MARGIN), min(h, top + STRIP + _BAND_MARGIN)
        rows = slice(top - lo, top - lo + min(STRIP, h - top))
        strip = luma_of(image[lo:hi]) if image.ndim == 3 else image[lo:hi]
        for k, band in enumerate(atrous_bands(strip, BANDS)):
            _add_at(sums[k][top // BLOCK:], _block_sums_of(np.square(band[rows])))
    return sums / _block_counts(h, w)


def luma_of(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in [0, 1] of an (H, W, 3) uint8 image, one product over the whole image:
    the decoder reads a map against this luma, and the library's sums round differently with
    the array's size (by an ulp), so only the encoder takes it a strip at a time
    (``block_energies`` of the 8-bit image)."""
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


def _upsample(values: np.ndarray, top: int, height: int, left: int, width: int) -> np.ndarray:
    """Block values (By, Bx) interpolated bilinearly between block centres to the pixels of
    rows top..top+height, columns left..left+width (float32, clamped at the outer centres)."""
    def axis(n: int, start: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.clip((np.arange(start, start + size) + 0.5) / BLOCK - 0.5, 0, n - 1)
        i0 = np.floor(f).astype(np.int64)
        i1 = np.minimum(i0 + 1, n - 1)
        return i0, i1, (f - i0).astype(np.float32)

    by, bx = values.shape
    c0, c1, cw = axis(bx, left, width)
    cols = values[:, c0] * (1 - cw) + values[:, c1] * cw  # (By, width)
    r0, r1, rw = axis(by, top, height)
    return (cols[r0] * (1 - rw)[:, None] + cols[r1] * rw[:, None]).astype(np.float32)


def _strips(height: int, cfg: TextureConfig) -> list[Span]:
    return spans(height, STAGE_STRIP, margin(cfg))


class _TileAnalysis(NamedTuple):
    """What the stage reads of one tile of the decode (its own pixels only), whatever the
    target: per fine band, the band, its local mean square, its texture energy and the
    band-filtered noise; the edge mask; and per band, the sums over the tile's blocks of the
    band's square and of its texture energy (``_with_block_energies``)."""
    rows: Span
    cols: Span
    bands: list[np.ndarray]
    energy: list[np.ndarray]
    texture: list[np.ndarray]
    noise: list[np.ndarray]
    keep: np.ndarray
    squares: list[np.ndarray]
    textures: list[np.ndarray]


class _StripAnalysis(NamedTuple):
    """A strip's tiles, left to right."""
    top: int
    n: int
    tiles: list[_TileAnalysis]


def _strip_analyses(luma: np.ndarray, seed: int, cfg: TextureConfig, workers: int = 1) -> Iterator[_StripAnalysis]:
    """The strips' analyses, top down: ``texture.band_energies`` of the two finest bands
    (``texture.analyse`` also measures a third and the model's qindex inputs, which the
    mapped stage does not read), the band-filtered noise, the edge mask and the block sums.
    Each strip is computed in tiles of about ``TILE_COLS`` columns (whole blocks), whose planes stay
    in the caches, on ``workers`` threads (``cores.in_order``: each tile reads only ``luma``)."""
    h, w = luma.shape
    strips, cols = _strips(h, cfg), spans(w, tile_columns(w, BLOCK), margin(cfg))

    def analyse(tile: tuple[Span, Span]) -> _TileAnalysis:
        r, c = tile
        y = luma[r.lo:r.hi, c.lo:c.hi]
        bands, energy, texture = band_energies(y, BANDS, cfg)
        noise = atrous_bands(noise_rows(seed, cfg.period, r.lo, r.hi - r.lo, c.hi - c.lo, left=c.lo), BANDS)
        bands, energy, texture, noise = ([x[r.inner, c.inner] for x in planes] for planes in (bands, energy, texture, noise))
        return _TileAnalysis(r, c, bands, energy, texture, noise, edge_mask(y)[r.inner, c.inner],
                             [_block_sums_of(np.square(b)) for b in bands], [_block_sums_of(t) for t in texture])

    tiles = in_order(analyse, [(r, c) for r in strips for c in cols], workers)
    for r in strips:
        yield _StripAnalysis(r.start, r.n, [next(tiles) for _ in cols])


def _with_block_energies(luma: np.ndarray, seed: int, cfg: TextureConfig,
                         workers: int = 1) -> Iterator[tuple[_StripAnalysis, np.ndarray, np.ndarray]]:
    """Each strip's analysis with what the decode has per block and band: the mean square of
    its band (``have``) and the mean of its texture energy, by which the stage spreads a
    block's lack (``where``). A strip's rows read its own blocks and, through the blend, the
    next strip's first row of blocks (strips are whole rows of blocks), so the strips are
    analysed one ahead and each is analysed once; blocks further down are not summed yet
    and not read."""
    h, w = luma.shape
    have = np.zeros((BANDS, *grid(h, w)))
    where = np.zeros_like(have)
    counts = _block_counts(h, w)
    held = None
    for sa in _strip_analyses(luma, seed, cfg, workers):
        for t in sa.tiles:
            blocks = np.s_[t.rows.start // BLOCK:, t.cols.start // BLOCK:]
            for k in range(BANDS):
                _add_at(have[k][blocks], t.squares[k])
                _add_at(where[k][blocks], t.textures[k])
        if held is not None:
            yield held, have / counts, where / counts
            if (4 * BANDS + 1) * 4 * held.n * w >= TRIM_BYTES:  # the float32 planes of ``_TileAnalysis``
                return_freed_memory()  # the drawn strip's tiles, freed in their threads' arenas
        held = sa
    if held is not None:
        yield held, have / counts, where / counts


def _add_at(out: np.ndarray, sums: np.ndarray) -> None:
    """Add block sums into the top left corner of ``out``."""
    out[:sums.shape[0], :sums.shape[1]] += sums


def _strip_textures(sa: _StripAnalysis, needs: list[np.ndarray], where: np.ndarray, cfg: TextureConfig,
                    workers: int = 1) -> list[np.ndarray]:
    """The luma texture at realism 1 of one strip that brings its blocks up by each of
    ``needs`` (BANDS, By, Bx), spread by the decode's texture energy against ``where``: drawn
    pixel by pixel, the tiles of every need side by side on ``workers`` threads."""
    w = sa.tiles[-1].cols.start + sa.tiles[-1].cols.n
    texs = [np.empty((sa.n, w), dtype=np.float32) for _ in needs]

    def draw(job: tuple[int, _TileAnalysis]) -> None:
        i, t = job
        texs[i][:, t.cols.own] = _tile_texture(t, needs[i], where, cfg)

    for _ in in_order(draw, [(i, t) for i in range(len(needs)) for t in sa.tiles], workers):
        pass
    return texs


def _tile_texture(t: _TileAnalysis, need: np.ndarray, where: np.ndarray, cfg: TextureConfig) -> np.ndarray:
    """``_strip_textures`` of one tile and need."""
    r, c = t.rows, t.cols
    unit = band_noise_rms(cfg.bands)
    tex = np.zeros((r.n, c.n), dtype=np.float32)
    for k in range(BANDS):
        lack = _upsample(need[k], r.start, r.n, c.start, c.n) * np.float32(ENERGY_GAIN[k])
        add = t.texture[k] + np.float32(SPREAD)
        add *= lack / (_upsample(where[k], r.start, r.n, c.start, c.n) + np.float32(SPREAD))
        np.minimum(add, np.float32(PEAK) * lack, out=add)
        add *= t.keep  # the share of pixels near strong edges is dropped, not moved elsewhere
        term = BandTerm(add, t.noise[k], unit[k], t.bands[k], t.energy[k])
        tex += amplified(term, add, cfg.amplify[k] if cfg.amplify[k] > 0 else 1.0, cfg.max_gain)
    return tex


def add_mapped_texture(rgb: np.ndarray, seed: int, realism: float, cfg: TextureConfig,
                       target: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Add to a (3, H, W) float32 decode in [0, 1], in place, R times the luma texture that
    brings each block's fine bands to ``target`` (BANDS, By, Bx), strip by strip, each strip's
    tiles analysed and drawn on ``workers`` threads (default: the granted cores)."""
    if realism <= 0.0:
        return rgb
    luma = np.tensordot(LUMA, rgb, axes=1)
    workers = max(1, granted_cores() if workers is None else workers)
    for sa, have, where in _with_block_energies(luma, seed, cfg, workers):
        tex, = _strip_textures(sa, [np.maximum(target - have, 0.0)], where, cfg, workers)
        rgb[:, sa.top:sa.top + len(tex)] += np.float32(realism) * tex
    return clip_(rgb, 0.0, 1.0)


@dataclass(frozen=True)
class Preview:
    """What a realism-1 decode of the file has before its texture stage, and what the stage
    runs with: the encoder's closed loop runs the stage on it."""

    decode: np.ndarray  # (H, W, 3) uint8, as the decoder writes it
    seed: int
    cfg: TextureConfig
    threads: int | None = None  # the stage's threads (``--threads``; None: the granted cores)

    def rows(self, top: int, n: int) -> np.ndarray:
        """Rows top..top+n as the stage sees a decode: (3, n, W) float32 in [0, 1] (the
        whole image in float would be 288 MB at 24 MP)."""
        return self.decode[top:top + n].transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)


def _cell_levels(y: np.ndarray) -> np.ndarray:
    """Mean |finest Laplacian band| per CELL-px cell (the measure of ``artefacts.flat_noise``)
    of a luma plane in 8-bit levels."""
    return _band_cells(y, 0, len(y) - len(y) % CELL)


class _CellStream:
    """``_cell_levels`` of a plane given strip by strip, top down, in strips of whole cells
    (the last may be shorter): a strip is measured once the next one's first rows are in,
    since its finest band reads ``_BAND_REACH`` rows beyond it, so two strips are held at
    most and the values are those of the whole plane."""

    def __init__(self) -> None:
        self._cells: list[np.ndarray] = []
        self._above: np.ndarray | None = None
        self._held: np.ndarray | None = None

    def push(self, rows: np.ndarray) -> None:
        if self._held is not None:
            self._measure(rows[:_BAND_REACH])
        self._held = rows

    def levels(self) -> np.ndarray:
        """The cells of every strip given (the last one measured now)."""
        if self._held is not None:
            self._measure(self._held[:0])
            self._held = None
        return np.concatenate(self._cells)

    def _measure(self, below: np.ndarray) -> None:
        rows = self._held
        above = rows[:0] if self._above is None else self._above
        n = len(rows) - len(rows) % CELL
        if n == 0:  # no whole cell (the plane's last rows, or a plane under one cell)
            self._cells.append(np.zeros((0, rows.shape[1] // CELL), dtype=rows.dtype))
        else:
            y = np.concatenate([above, rows, below])
            self._cells.append(_band_cells(y, len(above), n))
        self._above = rows[-_BAND_REACH:]


def _band_cells(y: np.ndarray, skip: int, n: int) -> np.ndarray:
    """``_cell_levels`` of rows skip..skip+n of ``y`` (n whole cells), the rows around them
    read by the band only."""
    from ..artefacts import block_means, fine_band

    return block_means(fine_band(y)[skip:skip + n], CELL)


def _per_block(cells: np.ndarray, blocks: tuple[int, int]) -> np.ndarray:
    """Cell values summed over each block and its eight neighbours (By, Bx): what moving
    one block's symbols changes, through the blend, reaches that far."""
    k = BLOCK // CELL
    by, bx = blocks
    full = np.zeros((by * k, bx * k))
    full[:cells.shape[0], :cells.shape[1]] = cells
    sums = np.pad(full.reshape(by, k, bx, k).sum(axis=(1, 3)), 1)
    return sum(sums[i:i + by, j:j + bx] for i in range(3) for j in range(3))


def _output_strips(preview: Preview, block_targets: list[np.ndarray]) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Strip by strip, top down, the first row and the luma (8-bit levels, float32) of the
    realism-1 output for each of the targets: what ``add_mapped_texture`` gives, with the
    decode's analysis computed once for all of them."""
    h = len(preview.decode)
    luma = np.empty(preview.decode.shape[:2], dtype=np.float32)
    for top in range(0, h, STRIP):
        luma[top:top + STRIP] = np.tensordot(LUMA, preview.rows(top, STRIP), axes=1)
    workers = preview.threads or granted_cores()
    for sa, have, where in _with_block_energies(luma, preview.seed, preview.cfg, workers):
        rgb = preview.rows(sa.top, sa.n)
        texs = _strip_textures(sa, [np.maximum(target - have, 0.0) for target in block_targets], where,
                               preview.cfg, workers)
        yield sa.top, [np.tensordot(LUMA, clip_(rgb + tex, 0.0, 1.0), axes=1) * np.float32(255.0) for tex in texs]


def fitted_moves(symbols: np.ndarray, reference: np.ndarray, original: np.ndarray, preview: Preview) -> np.ndarray:
    """Per block (By, Bx), the ``DELTAS`` entry by which to move the map's symbols: the one
    whose realism-1 output (``add_mapped_texture`` on ``preview``) is nearest the original in
    the cells of the block and its neighbours: |log| of the ratio of fine-band levels, summed.
    Every block is moved at once per trial, so one stage output per entry serves all blocks,
    and the stage's analysis of the decode (bands, energies, edges, noise) serves every
    entry. The outputs are measured strip by strip and never held whole."""
    from ..artefacts import luma

    order = sorted(DELTAS, key=abs)  # a tie keeps the smaller move (the measure, where nothing differs)
    trials = [targets(reference, np.clip(symbols + d, 0, LEVELS - 1)) for d in order]
    want, outs = _CellStream(), [_CellStream() for _ in order]
    for top, ys in _output_strips(preview, trials):
        want.push(luma(original[top:top + len(ys[0])]))
        for stream, y in zip(outs, ys):
            stream.push(y)
    want_levels = want.levels() + CELL_FLOOR
    best = np.full(symbols.shape[1:], np.inf)
    moves = np.zeros(symbols.shape[1:], dtype=np.int64)
    for delta, stream in zip(order, outs):
        cost = _per_block(np.abs(np.log((stream.levels() + CELL_FLOOR) / want_levels)), symbols.shape[1:])
        better = cost < best
        best[better], moves[better] = cost[better], delta
    return moves


def fitted_symbols(symbols: np.ndarray, reference: np.ndarray, original: np.ndarray, preview: Preview) -> np.ndarray:
    """The map's symbols moved by ``fitted_moves``."""
    return np.clip(symbols + fitted_moves(symbols, reference, original, preview)[None], 0, LEVELS - 1)


#: Above ``FIT_MAX_PIXELS`` the default effort fits windows of this many blocks a side...
WINDOW_BLOCKS = 8
#: ...spread over the photo to cover about this share of it (``fit_windows``).
WINDOW_SHARE = 0.25


def fit_windows(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """Boxes (top, left, height, width) in pixels, on the block grid, that the windowed fit
    decodes: ``WINDOW_BLOCKS`` blocks a side (less where the photo is smaller), spread evenly
    over the photo by rows and columns to cover about ``WINDOW_SHARE`` of it."""
    from ..windows import spread

    if WINDOW_SHARE <= 0:
        return []
    by, bx = grid(height, width)
    k = min(WINDOW_BLOCKS, by, bx)
    rows, cols = max(1, by // k), max(1, bx // k)
    n = max(1, round(WINDOW_SHARE * by * bx / (k * k)))
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    boxes = []
    for i in spread(len(cells), n):
        r, c = cells[i]
        top = round(r * (by - k) / max(1, rows - 1)) if rows > 1 else (by - k) // 2
        left = round(c * (bx - k) / max(1, cols - 1)) if cols > 1 else (bx - k) // 2
        boxes.append((top * BLOCK, left * BLOCK, min(k * BLOCK, height - top * BLOCK), min(k * BLOCK, width - left * BLOCK)))
    return boxes


def flat_cells(original: np.ndarray) -> np.ndarray:
    """Per block (By, Bx), how many of its 16-px cells the original has flat (a mean
    |finest band| under one 8-bit level): where the fit takes grain away."""
    from ..artefacts import luma

    h, w = original.shape[:2]
    by, bx = grid(h, w)
    k = BLOCK // CELL
    stream = _CellStream()  # strip by strip: the whole luma in float64 would be 192 MB at 24 MP
    for top in range(0, h, STRIP):
        stream.push(luma(original[top:top + STRIP]))
    levels = stream.levels()
    full = np.full((by * k, bx * k), np.inf)
    full[:levels.shape[0], :levels.shape[1]] = levels
    return (full < 1.0).reshape(by, k, bx, k).sum(axis=(1, 3))


def windowed_moves(symbols: np.ndarray, reference: np.ndarray, original: np.ndarray,
                   previews: list[tuple[tuple[int, int, int, int], Preview]]) -> np.ndarray:
    """Per block (By, Bx), a move for a photo of which only windows were decoded at realism
    1 (``previews``: box and its decode): inside a window, away from its edge (whose blocks'
    neighbours lie outside it), the fit's own move; elsewhere the median move of the fitted
    blocks with the same finest-band symbol and as many flat cells (``flat_cells``), else
    with the same symbol, else none."""
    moves = np.zeros(symbols.shape[1:], dtype=np.int64)
    known = np.zeros(symbols.shape[1:], dtype=bool)
    for (top, left, h, w), preview in previews:
        b = np.s_[top // BLOCK:(top + h + BLOCK - 1) // BLOCK, left // BLOCK:(left + w + BLOCK - 1) // BLOCK]
        m = fitted_moves(symbols[(slice(None), *b)], reference[(slice(None), *b)],
                         original[top:top + h, left:left + w], preview)
        inner = np.zeros(m.shape, dtype=bool)
        inner[1:-1, 1:-1] = True
        moves[b][inner], known[b][inner] = m[inner], True
    flat = flat_cells(original)
    keys = [symbols[0] * 100 + flat, symbols[0]]
    for key in keys:
        todo = ~known
        for value in np.unique(key[todo]):
            seen = known & (key == value)
            if seen.any():
                where = todo & (key == value)
                moves[where], known[where] = int(np.median(moves[seen])), True
    return moves


def make_map(original: np.ndarray, base: np.ndarray, preview: Preview | None = None,
             windows: list[tuple[tuple[int, int, int, int], Preview]] | None = None) -> bytes:
    """The texture map record of an image (H, W, 3 uint8) given its base-only decode, its
    symbols fitted to the decoder's texture stage where a ``preview`` of the whole image is
    given, or from previews of ``windows`` of it (``windowed_moves``)."""
    from ..entropy_models.texture_map_coding import encode_map

    reference = block_energies(base)
    symbols = map_symbols(block_energies(original), reference)
    if preview is not None:
        symbols = fitted_symbols(symbols, reference, original, preview)
    elif windows:
        symbols = np.clip(symbols + windowed_moves(symbols, reference, original, windows)[None], 0, LEVELS - 1)
    return encode_map(symbols, BLOCK_LOG2, LEVELS)


def read_map(record: bytes, base: np.ndarray) -> np.ndarray:
    """The target block energies (BANDS, By, Bx) a texture map record says, given the base-only decode."""
    from ..entropy_models.texture_map_coding import decode_map

    reference = block_energies(luma_of(base))
    return targets(reference, decode_map(record, reference.shape, BLOCK_LOG2, LEVELS))
