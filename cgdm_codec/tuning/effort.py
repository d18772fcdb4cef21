"""Effort levels: how much encoder time buys how much search.

The paper fine-tunes for 250 Adam iterations at lr 5e-5 on a GPU. One iteration here is
one 9-step decode of a 256 x 256 decoder tile plus a backward pass through its last step,
about 0.5 s on a 2-core CPU, so the CPU levels run far fewer iterations with a larger
step size, and score every candidate with the real decoder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Effort:
    """Search settings of one encode.

    ``score_tiles``: candidates are scored on a full decode when the image has at most this
    many decoder tiles, otherwise on this many decoder tiles spread over the image.
    ``syntax_windows``: the syntax generator reads at most this many of its pooling
    windows (``SyntaxConfig.pool_tile``, 512 px), spread over the image; None reads all.
    """

    finetune_iters: int = 0
    tiles_per_iter: int = 1
    lr: float = 5e-5
    seeds: int = 1
    score_tiles: int = 12
    syntax_windows: int | None = None

    @property
    def searches(self) -> bool:
        return self.finetune_iters > 0 or self.seeds > 1


PAPER_LR = 5e-5

#: The one-pass presets read 24 of a large photo's 512-px syntax windows (6.3 MP): on 7
#: photos of 10-24 MP at levels 1 3 5, 0-4 of the 24 symbols moved by 1 against reading
#: every window, for a quarter to a sixth of the generator's time; a 10.6 MP photo at
#: levels 1 and 3 decoded within 0.02 dB of it (benchmarks/syntax_windows.py, docs/encoder.md).
SYNTAX_WINDOWS = 24

# ``fast`` scores its one candidate (against the base-only decode) on a few tiles only.
EFFORTS_CPU: dict[str, Effort] = {
    "fast": Effort(score_tiles=4, syntax_windows=SYNTAX_WINDOWS),
    # No search by default since 2026-12-02: against one pass at the same base-codec speed,
    # 24 fine-tuning iterations and 2 seeds gained -0.002 dB / +0.0001 MS-SSIM / +0.0003
    # HaarPSI for 5 more bytes and 11x the encode time (AV1 + cgdm-av1, 4 sunhays80 photos
    # halved, levels 1 3 5: benchmarks/effort.py, docs/encoder.md). ``max`` still searches.
    "default": Effort(score_tiles=12, syntax_windows=SYNTAX_WINDOWS),
    "max": Effort(finetune_iters=250, tiles_per_iter=1, lr=PAPER_LR, seeds=4, score_tiles=24),
}
EFFORTS_CUDA: dict[str, Effort] = {
    "fast": Effort(),
    "default": Effort(finetune_iters=250, tiles_per_iter=4, lr=PAPER_LR, seeds=4, score_tiles=48),
    "max": Effort(finetune_iters=250, tiles_per_iter=8, lr=PAPER_LR, seeds=8, score_tiles=96),
}
EFFORTS = {"cpu": EFFORTS_CPU, "cuda": EFFORTS_CUDA}


def resolve_effort(name: str = "default", device_type: str = "cpu", *,
                   finetune_iters: int | None = None, seeds: int | None = None,
                   finetune: bool = True) -> Effort:
    """The preset for ``name`` on this kind of device, with explicit overrides applied."""
    presets = EFFORTS.get(device_type, EFFORTS_CPU)
    if name not in presets:
        raise ValueError(f"unknown effort '{name}' (choose from {', '.join(presets)})")
    effort = presets[name]
    if finetune_iters is not None:
        if finetune_iters < 0:
            raise ValueError("finetune_iters must be >= 0")
        effort = replace(effort, finetune_iters=finetune_iters)
    if not finetune:
        effort = replace(effort, finetune_iters=0)
    if seeds is not None:
        if seeds < 1:
            raise ValueError("seeds must be >= 1")
        effort = replace(effort, seeds=seeds)
    return effort


#: The presets count scored tiles of this area (256 x 256, the first decoder's tile); with
#: larger tiles the count shrinks so that the scored pixels, and the time, stay the same.
REFERENCE_TILE_AREA = 256 * 256


def scored_tile_count(tile: tuple[int, int], score_tiles: int) -> int:
    th, tw = tile
    return max(1, min(score_tiles, round(score_tiles * REFERENCE_TILE_AREA / (th * tw))))
