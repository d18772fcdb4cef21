"""Tile grid geometry and blending."""

from __future__ import annotations

import pytest
torch = pytest.importorskip("torch")

from cgdm_codec.sampling.tiling import axis_tiles, make_grid, pad_to_canvas, run_tiled, tile_weights

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("length", [1, 7, 8, 255, 256, 257, 300, 504, 505, 513, 1000])
def test_axis_tiles_cover_with_overlap(length):
    a = axis_tiles(length, 256, 8, 8)
    assert a.canvas == (length if length > 256 else max(16, -(-length // 8) * 8))
    assert a.starts[0] == 0 and a.starts[-1] + a.tile == a.canvas
    for s0, s1 in zip(a.starts, a.starts[1:]):
        assert s0 < s1 and s0 + a.tile - s1 >= 8  # neighbours overlap by at least 8
    if length <= 256:
        assert a.starts == (0,) and a.tile == a.canvas


def test_rejects_bad_geometry():
    with pytest.raises(ValueError):
        axis_tiles(100, 250, 8, 8)
    with pytest.raises(ValueError):
        axis_tiles(0, 256, 8, 8)


@pytest.mark.parametrize("hw", [(1, 1), (7, 300), (513, 257), (64, 64)])
def test_constant_is_reproduced_and_size_kept(hw):
    h, w = hw
    grid = make_grid(h, w, 64, 8, 8)
    x = torch.full((1, 3, h, w), 0.37)
    canvas = pad_to_canvas(x, grid)
    assert canvas.shape[-2:] == grid.canvas
    out = run_tiled(lambda chunk, tiles: tiles[0], [canvas], grid, max_batch=3)
    assert out.shape == (1, 3, *grid.canvas)
    torch.testing.assert_close(out[..., :h, :w], x, atol=1e-6, rtol=0)


def test_identity_blend_of_any_image_is_exact_enough():
    x = torch.rand(1, 2, 150, 170)
    grid = make_grid(150, 170, 64, 8, 8)
    out = run_tiled(lambda chunk, tiles: tiles[0], [pad_to_canvas(x, grid)], grid, max_batch=5)
    torch.testing.assert_close(out[..., :150, :170], x, atol=1e-6, rtol=0)


def test_weights_ramp_only_towards_neighbours():
    grid = make_grid(100, 64, 64, 8, 8)
    weights = tile_weights(grid)
    assert len(weights) == len(grid) == 2
    assert (weights[0][:-8] == 1).all() and (weights[0][-8:] < 1).all()
    assert (weights[1][8:] == 1).all() and (weights[1][:8] < 1).all()
    assert all((w > 0).all() for w in weights)


def test_chunks_see_at_most_max_batch_tiles():
    grid = make_grid(300, 300, 64, 8, 8)
    sizes = []

    def fn(chunk, tiles):
        sizes.append(tiles[0].shape[0])
        return tiles[0] * 2

    out = run_tiled(fn, [torch.ones(1, 1, 300, 300)], grid, max_batch=4)
    assert max(sizes) <= 4 and sum(sizes) == len(grid)
    torch.testing.assert_close(out, torch.full_like(out, 2.0))


def test_padding_small_and_odd_sizes():
    grid = make_grid(1, 1, 256, 8, 8)
    out = pad_to_canvas(torch.full((1, 3, 1, 1), 0.5), grid)
    assert out.shape == (1, 3, 16, 16) and torch.all(out == 0.5)  # at least twice the multiple
    grid = make_grid(7, 300, 256, 8, 8)
    assert grid.canvas == (16, 300) and grid.tile == (16, 256)
    grid = make_grid(17, 24, 256, 8, 8)
    assert grid.canvas == (24, 24)


@pytest.mark.parametrize("size", [(37, 50), (300, 70), (3, 9)])
def test_padded_image_tiles_equal_the_padded_canvas(size):
    from cgdm_codec.sampling.tiling import PaddedImage, crop

    h, w = size
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
    grid = make_grid(h, w, 32, 8, 8, "fitted")
    canvas, padded = pad_to_canvas(x, grid), PaddedImage.of(x, grid)
    th, tw = grid.tile
    for y, x0 in grid.positions():
        assert torch.equal(crop(padded, y, x0, th, tw), canvas[..., y:y + th, x0:x0 + tw])
    fn = lambda chunk, tiles: tiles[0] * 2 + tiles[1]  # noqa: E731
    assert torch.equal(run_tiled(fn, [canvas, padded], grid, 3), run_tiled(fn, [canvas, canvas], grid, 3))
