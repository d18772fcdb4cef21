"""The sampling core's array helpers."""

from __future__ import annotations

import numpy as np


def test_in_place_clip_gives_numpys_clip():
    """``arrays.clip_`` (the sampler's and the texture stages' clamp) gives what
    ``np.clip`` gives, NaN and infinities included, in the array it was handed."""
    from cgdm_codec.sampling.arrays import clip_

    rng = np.random.default_rng(0)
    a = rng.uniform(-3, 3, (3, 17, 29)).astype(np.float32)
    a[0, 0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    want = np.clip(a, -1.0, 1.0)
    got = clip_(a, -1.0, 1.0)
    assert got is a and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)  # NaN where NaN
