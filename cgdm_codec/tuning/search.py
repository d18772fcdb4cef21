"""Choose the (syntax, seed) pair to write by decoding candidates and scoring them.

Scoring uses the decoder itself: a full decode (``restore``) when the image has few tiles,
otherwise the decoder's procedure on a fixed spread of its tiles. The generator's own
syntax at the requested seed is always a candidate, so searching can only lower the
objective on what is scored, never raise it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..models.cgdm import Cgdm
from ..sampling.ddim import DDIMScheduler
from ..sampling.restore import restore
from .effort import Effort, scored_tile_count
from .finetune import finetune_generator, generator_symbols
from ..quality.objective import Objective
from ..windows import spread
from .simulate import DecoderView, decoder_view, sample_tiles, with_seed

StepProgress = Callable[[str, int, int], None]
SEED_SPACE = 1 << 32


@dataclass(frozen=True)
class Candidate:
    symbols: torch.Tensor  # (S,) long
    seed: int
    source: str  # "generator" or "finetuned"


@dataclass
class SearchResult:
    best: Candidate
    scores: list[tuple[Candidate, float]] = field(default_factory=list)
    scored_on: str = "nothing"  # "image", "N tiles" or "nothing" (a single candidate)
    best_score: float | None = None
    base_score: float | None = None  # the same objective on the base-only decode x~

    @property
    def base_only_wins(self) -> bool:
        """The diffusion stage would make this image worse on the encoder's objective."""
        return self.best_score is not None and self.base_score is not None and self.base_score <= self.best_score


def candidates(base: torch.Tensor, tuned: torch.Tensor | None, seed: int, seeds: int) -> list[Candidate]:
    """The generator's syntax at ``seed``, then the best syntax we have at ``seeds`` seeds."""
    out = [Candidate(base, seed, "generator")]
    syntax, source = (base, "generator") if tuned is None or torch.equal(tuned, base) else (tuned, "finetuned")
    first = 1 if source == "generator" else 0
    out += [Candidate(syntax, (seed + k) % SEED_SPACE, source) for k in range(first, seeds)]
    return out


def syntax_bpp(model: Cgdm, symbols: torch.Tensor, pixels: int) -> float:
    """The syntax's real coded size in bits per pixel."""
    return 8.0 * len(model.prior.encode_syntax(symbols)) / pixels


def score(model: Cgdm, view: DecoderView, cand: Candidate, condition: int, steps: int,
          objective: Objective, score_tiles: int, device: torch.device, precision: str) -> float:
    """The objective on what a decoder of this candidate's file will produce."""
    sampler = model.cfg.sampler
    pixels = view.grid.height * view.grid.width
    bpp = syntax_bpp(model, cand.symbols, pixels)
    score_tiles = scored_tiles(view, score_tiles)
    if len(view.grid) <= score_tiles:
        decoded = restore(model, view.base, cand.symbols, condition, cand.seed, steps,
                          device=device, precision=precision).to(device)
        return float(objective.torch(decoded, view.original.to(device, torch.float32), bpp))
    positions = view.grid.positions()
    chosen = [positions[i] for i in spread(len(positions), score_tiles)]
    scheduler = DDIMScheduler.from_config(sampler)
    seeded = with_seed(view, cand.seed, sampler)
    syn = cand.symbols.to(device).float().view(1, -1)
    total = 0.0
    with torch.no_grad():
        for first in range(0, len(chosen), 8):
            part = chosen[first:first + 8]
            decoded, target = sample_tiles(model.unet.to(device).eval(), scheduler, seeded, part,
                                           syn, condition, steps)
            total += float(objective.torch(decoded.float(), target, bpp)) * len(part)
    return total / len(chosen)


def scored_tiles(view: DecoderView, score_tiles: int) -> int:
    return scored_tile_count(view.grid.tile, score_tiles)


def base_score(view: DecoderView, objective: Objective, score_tiles: int, device: torch.device) -> float:
    """The objective of a base-only file (no syntax bytes) on what ``score`` looks at."""
    score_tiles = scored_tiles(view, score_tiles)
    if len(view.grid) <= score_tiles:
        return float(objective.torch(view.base.to(device, torch.float32), view.original.to(device, torch.float32), 0.0))
    positions = view.grid.positions()
    chosen = [positions[i] for i in spread(len(positions), score_tiles)]
    vh, vw = view.valid
    base = (view.base_tiles(chosen)[..., :vh, :vw] + 1) / 2
    target = (view.original_tiles(chosen)[..., :vh, :vw] + 1) / 2
    return float(objective.torch(base, target, 0.0))


def search(model: Cgdm, x: torch.Tensor, x_tilde: torch.Tensor, condition: int, seed: int,
           effort: Effort, steps: int | None = None, objective: Objective = Objective(),
           device: torch.device | str = "cpu", precision: str = "auto",
           progress: StepProgress | None = None, decide: bool = True) -> SearchResult:
    """The best candidate for an image ``x`` (1, 3, H, W) in [0, 1] with base decode ``x_tilde``.

    ``condition`` is the base codec's (``BaseCodec.condition``). With an effort that does not
    search this is one pass of the syntax generator. ``decide`` also scores the base-only
    decode (``base_only_wins``); without it a single candidate is not scored at all.
    """
    device = torch.device(device)
    steps = steps or model.cfg.sampler.steps
    view = decoder_view(x, x_tilde, seed, model.cfg.sampler, model.unet.multiple, device)
    r = model.cfg.syntax.symbol_range
    base = generator_symbols(model.syntax.to(device), view, r, device, precision, effort.syntax_windows)
    if not effort.searches:
        result = SearchResult(Candidate(base, seed, "generator"))
        if decide:
            result.best_score = score(model, view, result.best, condition, steps, objective,
                                      effort.score_tiles, device, precision)
            result.base_score = base_score(view, objective, effort.score_tiles, device)
        return result
    tuned = None
    if effort.finetune_iters > 0:
        report = (lambda i, n: progress("fine-tuning the syntax encoder", i, n)) if progress else None
        generator = finetune_generator(model, view, condition, effort.finetune_iters, effort.tiles_per_iter,
                                       effort.lr, steps, objective, device, precision, rng_seed=seed,
                                       progress=report)
        tuned = generator_symbols(generator, view, r, device, precision, effort.syntax_windows)
    # a network that does not read x_t (UNetConfig.noise_input) decodes the same picture at
    # every seed: the first is the only one worth scoring
    seeds = effort.seeds if model.unet.cfg.noise_input else 1
    cands = candidates(base, tuned, seed, seeds)
    result = SearchResult(cands[0])
    if decide:
        result.base_score = base_score(view, objective, effort.score_tiles, device)
    if len(cands) == 1:
        if not decide:
            return result
        result.best_score = score(model, view, cands[0], condition, steps, objective, effort.score_tiles,
                                  device, precision)
        return result
    n_scored = scored_tiles(view, effort.score_tiles)
    result.scored_on = "image" if len(view.grid) <= n_scored else f"{n_scored} tiles"
    for i, cand in enumerate(cands):
        s = score(model, view, cand, condition, steps, objective, effort.score_tiles, device, precision)
        result.scores.append((cand, s))
        if progress is not None:
            progress("scoring candidate decodes", i + 1, len(cands))
    result.best, result.best_score = min(result.scores, key=lambda cs: cs[1])
    return result
