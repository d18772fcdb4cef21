"""How many tiles the decoder hands the network at once (torch-free)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cgdm_codec.runtime import TILEWISE_MAX_PIXELS, OrtDenoiser
from cgdm_codec.sampling.restore import CHUNK_PIXELS, chunk_tiles, lanes
from cgdm_codec.sampling.tiling import make_grid


def grid(height: int, width: int):
    return make_grid(height, width, 384, 8, 8, "fitted")


def test_a_batched_chunk_keeps_its_pixel_budget():
    big = grid(4000, 6000)  # 376 x 384 tiles
    assert chunk_tiles(big, 8) == CHUNK_PIXELS // (376 * 384) == 3
    assert chunk_tiles(grid(100, 100), 8) == 8  # small tiles: the caller's cap


@pytest.mark.parametrize("height, width, lanes_, want", [
    (4000, 6000, 2, 6), (4000, 6000, 4, 4), (1080, 1920, 2, 6), (1080, 1920, 3, 6)])
def test_side_by_side_chunks_are_whole_rounds_of_the_lanes(height, width, lanes_, want):
    n = chunk_tiles(grid(height, width), 8, lanes_)
    assert n == want and n % lanes_ == 0


def test_a_chunk_smaller_than_the_lanes_is_not_rounded_to_nothing():
    assert chunk_tiles(grid(4000, 6000), 1, 2) == 1
    assert chunk_tiles(grid(4000, 6000), 3, 4) == 3


def test_the_onnx_denoiser_runs_tiles_side_by_side_up_to_the_largest_sampler_tile():
    two, one = SimpleNamespace(threads=2), SimpleNamespace(threads=1)
    assert OrtDenoiser.lanes(two, 376 * 384) == 2 and OrtDenoiser.lanes(two, 384 * 384) == 2
    assert OrtDenoiser.lanes(two, TILEWISE_MAX_PIXELS + 1) == 1
    assert OrtDenoiser.lanes(one, 264 * 264) == 1
    g = grid(4000, 6000)
    assert lanes(SimpleNamespace(lanes=lambda px: 2), g) == 2
    assert lanes(SimpleNamespace(), g) == 1  # a denoiser that batches (torch)
