"""The encoder's search: effort presets, decoder-exact tile simulation, fine-tuning, seeds."""

from __future__ import annotations

from dataclasses import replace

import pytest
torch = pytest.importorskip("torch")

from cgdm_codec.models.syntax import symbols_of
from cgdm_codec.sampling.ddim import DDIMScheduler
from cgdm_codec.sampling.restore import restore
from cgdm_codec.tuning import Effort, resolve_effort, search
from cgdm_codec.tuning.effort import SYNTAX_WINDOWS
from cgdm_codec.tuning.finetune import finetune_generator, generator_symbols
from cgdm_codec.quality.objective import Objective
from cgdm_codec.tuning.search import SEED_SPACE, Candidate, candidates, score
from cgdm_codec.tuning.simulate import decoder_view, sample_tiles
from tiny_models import SAMPLER, image, trained_looking

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_thread")]
CPU = torch.device("cpu")


def pair(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = image(h, w, 1)
    noise = 0.08 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    return x, (x + noise).clamp(0, 1)


def test_presets_and_overrides():
    assert not resolve_effort("fast").searches
    default = resolve_effort("default")
    assert not default.searches and default.score_tiles > resolve_effort("fast").score_tiles  # measured: search did not pay
    assert resolve_effort("max").searches
    assert resolve_effort("max").finetune_iters == 250  # the paper's setting
    assert resolve_effort("default", "cuda").finetune_iters == 250
    assert resolve_effort("default", finetune=False).finetune_iters == 0
    assert resolve_effort("default", finetune=False).seeds == default.seeds
    assert resolve_effort("default", finetune_iters=5, seeds=2).searches
    assert resolve_effort("fast", finetune_iters=3, seeds=5) == Effort(3, 1, Effort().lr, 5, 4, SYNTAX_WINDOWS)
    assert resolve_effort("max").syntax_windows is None  # the search reads every window
    for bad in ({"finetune_iters": -1}, {"seeds": 0}):
        with pytest.raises(ValueError):
            resolve_effort("default", **bad)
    with pytest.raises(ValueError, match="unknown effort"):
        resolve_effort("extreme")


def test_candidates_keep_the_generator_first_and_wrap_seeds():
    a, b = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    assert [(c.source, c.seed) for c in candidates(a, None, 7, 3)] == [
        ("generator", 7), ("generator", 8), ("generator", 9)]
    assert [(c.source, c.seed) for c in candidates(a, b, SEED_SPACE - 1, 2)] == [
        ("generator", SEED_SPACE - 1), ("finetuned", SEED_SPACE - 1), ("finetuned", 0)]
    # a fine-tuning that lands on the same symbols adds no duplicate decode
    assert len(candidates(a, a.clone(), 0, 1)) == 1


def test_single_tile_simulation_is_the_decoder():
    model = trained_looking()
    x, xt = pair(20, 27)  # smaller than one tile: the decode is exactly one tile's run
    syntax = torch.tensor([3, -2, 0, 1, 0, 0, 5, -1])
    view = decoder_view(x, xt, 9, SAMPLER, model.unet.multiple, CPU)
    with torch.no_grad():
        sim, target = sample_tiles(model.unet, DDIMScheduler.from_config(SAMPLER), view,
                                   view.grid.positions(), syntax.float().view(1, -1), 1, 3)
    dec = restore(model, xt, syntax, 1, seed=9, steps=3, precision="fp32")
    assert sim.shape == dec.shape == target.shape
    torch.testing.assert_close(sim.clamp(0, 1), dec, atol=1e-5, rtol=0)
    torch.testing.assert_close(target, x)


def test_tile_simulation_matches_the_decoder_inside_tiles():
    model = trained_looking()
    x, xt = pair(56, 80)
    syntax = torch.tensor([3, -2, 0, 1, 0, 0, 5, -1])
    view = decoder_view(x, xt, 4, SAMPLER, model.unet.multiple, CPU)
    assert len(view.grid) > 2
    dec = restore(model, xt, syntax, 1, seed=4, steps=3, precision="fp32")
    (y, x0), (th, tw), o = view.grid.positions()[0], view.grid.tile, SAMPLER.overlap
    with torch.no_grad():
        sim, _ = sample_tiles(model.unet, DDIMScheduler.from_config(SAMPLER), view, [(y, x0)],
                              syntax.float().view(1, -1), 1, 3)
    inner = (..., slice(0, th - o), slice(0, tw - o))  # the first tile's pixels nobody blends into
    err = (sim.clamp(0, 1)[inner] - dec[..., y:y + th, x0:x0 + tw][inner]).abs()
    other = (restore(model, xt, syntax, 1, seed=5, steps=3, precision="fp32") - dec).abs()
    assert err.mean() < 0.05 * other.mean()  # far closer than a different seed's decode


def test_finetuning_changes_only_a_copy_and_the_symbols():
    model = trained_looking()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, xt = pair(40, 56)
    view = decoder_view(x, xt, 0, SAMPLER, model.unet.multiple, CPU)
    base = generator_symbols(model.syntax, view, 63, CPU, "fp32")
    gen = finetune_generator(model, view, 1, iterations=4, tiles_per_iter=2, lr=3e-2, steps=2,
                             objective=Objective(), device=CPU, precision="fp32")
    tuned = generator_symbols(gen, view, 63, CPU, "fp32")
    assert tuned.dtype == torch.long and tuned.shape == base.shape == (8,)
    with torch.no_grad():
        moved = (gen(x * 2 - 1, xt * 2 - 1) - model.syntax(x * 2 - 1, xt * 2 - 1)).abs().max()
    assert moved > 1e-3  # the copy learned something
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in model.parameters())


def test_no_search_is_one_generator_pass():
    model = trained_looking()
    x, xt = pair(30, 40)
    res = search(model, x, xt, 2, 11, Effort(), steps=2, precision="fp32")
    assert res.scores == [] and res.best.seed == 11 and res.best.source == "generator"
    with torch.no_grad():
        values = model.syntax(x * 2 - 1, xt * 2 - 1, tiled=True)
    assert torch.equal(res.best.symbols, symbols_of(values, 63).view(-1))


@pytest.mark.parametrize("h,w,score_tiles", [(40, 56, 99), (56, 80, 2)])
def test_search_never_scores_worse_than_the_generator(h, w, score_tiles):
    model = trained_looking()
    x, xt = pair(h, w)
    effort = Effort(finetune_iters=3, tiles_per_iter=1, lr=3e-2, seeds=3, score_tiles=score_tiles)
    calls = []
    res = search(model, x, xt, 1, 5, effort, steps=2, precision="fp32",
                 progress=lambda what, i, n: calls.append((what, i, n)))
    assert [c.seed for c, _ in res.scores][0] == 5 and res.scores[0][0].source == "generator"
    best = min(s for _, s in res.scores)
    assert dict((id(c), s) for c, s in res.scores)[id(res.best)] == best <= res.scores[0][1]
    assert res.best.seed in (5, 6, 7)
    assert res.scored_on == ("image" if score_tiles == 99 else "2 tiles")
    assert ("fine-tuning the syntax encoder", 3, 3) in calls
    assert calls[-1] == ("scoring candidate decodes", len(res.scores), len(res.scores))


def test_search_tries_no_other_seed_for_a_network_that_does_not_read_the_noise():
    """cgdm-av1-6 on (``UNetConfig.noise_input`` false): every seed decodes the same picture."""
    from cgdm_codec.models.cgdm import Cgdm

    reading = trained_looking()
    model = Cgdm(replace(reading.cfg, unet=replace(reading.cfg.unet, noise_input=False)))
    model.load_state_dict(reading.state_dict())
    model.prior.update_tables()
    x, xt = pair(40, 56)
    effort = Effort(finetune_iters=2, tiles_per_iter=1, lr=3e-2, seeds=3, score_tiles=99)
    res = search(model.eval(), x, xt, 1, 5, effort, steps=1, precision="fp32")
    assert {c.seed for c, _ in res.scores} <= {5} and res.best.seed == 5  # (one candidate: nothing to rank)
    assert len(search(reading, x, xt, 1, 5, effort, steps=1, precision="fp32").scores) >= 3


def test_full_image_score_is_the_objective_of_the_real_decode():
    model = trained_looking()
    x, xt = pair(40, 56)
    view = decoder_view(x, xt, 0, SAMPLER, model.unet.multiple, CPU)
    syntax = torch.tensor([1, 0, 0, 2, 0, 0, 0, -3])
    s = score(model, view, Candidate(syntax, 3, "generator"), 1, 2, Objective(), 99, CPU, "fp32")
    dec = restore(model, xt, syntax, 1, seed=3, steps=2, precision="fp32")
    bpp = 8 * len(model.prior.encode_syntax(syntax)) / (40 * 56)
    assert s == pytest.approx(float(Objective()(dec, x, bpp)), rel=1e-6)


def test_tiled_generator_gradients_match_with_recomputation():
    model = trained_looking()
    gen = model.syntax
    x, xt = pair(70, 90)
    tile = gen.cfg.pool_tile
    object.__setattr__(gen.cfg, "pool_tile", 32)  # several pooling tiles on a small image
    try:
        grads = []
        for grad_mode in (True, False):
            gen.zero_grad()
            if grad_mode:
                out = gen(x * 2 - 1, xt * 2 - 1, tiled=True)
            else:  # the same sum of tile means without checkpointing
                total, area = 0.0, 0
                for top in range(0, 70, 32):
                    for left in range(0, 90, 32):
                        sl = (..., slice(top, top + 32), slice(left, left + 32))
                        a = x[sl].shape[-2] * x[sl].shape[-1]
                        total, area = total + gen.pooled(x[sl] * 2 - 1, xt[sl] * 2 - 1) * a, area + a
                out = gen.from_pooled(total / area)
            out.square().sum().backward()
            grads.append([p.grad.clone() for p in gen.parameters()])
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    finally:
        object.__setattr__(gen.cfg, "pool_tile", tile)


def test_larger_tiles_are_scored_on_fewer_of_them():
    from dataclasses import replace

    from cgdm_codec.tuning.search import scored_tiles

    x, xt = pair(40, 56)
    view = decoder_view(x, xt, 0, SAMPLER, 8, CPU)
    assert scored_tiles(view, 12) == 12  # tiles up to 256 x 256 count as they are
    view.grid = replace(view.grid, rows=replace(view.grid.rows, tile=512), cols=replace(view.grid.cols, tile=512))
    assert scored_tiles(view, 12) == 3  # a 512 x 512 tile holds four 256 x 256 ones


@pytest.mark.parametrize("size", [(40, 72), (300, 17), (5, 3), (520, 390)])
def test_view_tiles_are_the_decoders_canvas_tiles(size):
    """The view cuts tiles from the image and the noise patch without building the canvas;
    they must equal the tiles of the decoder's padded canvas and periodic noise exactly."""
    from cgdm_codec.diffusion_config import SamplerConfig
    from cgdm_codec.sampling.restore import seeded_noise
    from cgdm_codec.sampling.tiling import canvas_index, pad_axis, pad_to_canvas

    for length, canvas in ((5, 8), (5, 13), (1, 4), (7, 7)):
        row = torch.arange(length, dtype=torch.float32).view(1, 1, 1, -1)
        assert torch.equal(row[..., canvas_index(length, canvas)], pad_axis(row, canvas - length, -1))
    h, w = size
    gen = torch.Generator().manual_seed(h * w)
    x, xt = torch.rand(1, 3, h, w, generator=gen), torch.rand(1, 3, h, w, generator=gen)
    for sampler in (SamplerConfig(tile=64, overlap=8, noise_period=32, tiling="fitted"),
                    SamplerConfig(tile=256, overlap=8, noise_period=256)):
        view = decoder_view(x, xt, 7, sampler, 8, CPU)
        positions, (th, tw) = view.grid.positions(), view.grid.tile
        noise = seeded_noise(7, *view.grid.canvas, sampler)
        canvas = pad_to_canvas(xt * 2.0 - 1.0, view.grid)
        for (y, x0), got_noise, got_base in zip(positions, view.noise_tiles(positions), view.base_tiles(positions)):
            assert torch.equal(got_noise, noise[0, :, y:y + th, x0:x0 + tw])
            assert torch.equal(got_base, canvas[0, :, y:y + th, x0:x0 + tw])
        assert torch.equal(view.original_tiles(positions[:1])[0],
                           pad_to_canvas(x * 2.0 - 1.0, view.grid)[0, :, :th, :tw])


def test_generator_maps_unit_images_tile_by_tile_to_the_same_values():
    from cgdm_codec.diffusion_config import CgdmConfig
    from cgdm_codec.models.syntax import SyntaxGenerator

    cfg = CgdmConfig.preset("tiny-av1").syntax
    gen = SyntaxGenerator(replace(cfg, pool_tile=32)).eval()
    x, xt = torch.rand(1, 3, 70, 45), torch.rand(1, 3, 70, 45)
    with torch.no_grad():
        for tiled in (False, True):
            assert torch.equal(gen(x, xt, tiled=tiled, unit=True), gen(x * 2.0 - 1.0, xt * 2.0 - 1.0, tiled=tiled))
