"""The seeded noise must match its written definition forever."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from cgdm_codec.sampling.noise import noise_patch, random_words, stream_key, tiled_noise

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def py_mix(z: int) -> int:
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & MASK
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def py_word(seed: int, n: int) -> int:
    key = py_mix((seed + GAMMA) & MASK)
    return py_mix((key + (n + 1) * GAMMA) & MASK)


def py_normal(seed: int, i: int) -> float:
    """Element i of the patch, straight from the format's definition, in plain Python."""
    a, b = py_word(seed, 2 * i), py_word(seed, 2 * i + 1)
    u1 = ((a >> 11) + 1) * 2.0 ** -53
    u2 = (b >> 11) * 2.0 ** -53
    z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return struct.unpack("<f", struct.pack("<f", z))[0]


# (seed, flat index) -> value, computed once with py_normal and frozen here.
REFERENCE = {
    (0, 0): -0.278874933719635,
    (0, 1): -0.7642228603363037,
    (0, 1000): 0.233375683426857,
    (0, 196607): -0.9289774298667908,
    (1, 0): 1.325671911239624,
    (123456789, 2): -0.9073585867881775,
    (2 ** 64 - 1, 1): 1.0395498275756836,
}


def test_key_is_standard_splitmix64():
    # The first SplitMix64 output from state 0 is the published 0xE220A8397B1DCDAF.
    assert int(stream_key(0)) == 0xE220A8397B1DCDAF
    assert [int(w) for w in random_words(0, 0, 2)] == [0xA706DD2F4D197E6F, 0xB382A305F4414F5E]


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_reference_values(key):
    seed, index = key
    patch = noise_patch(seed, 3, 256).reshape(-1)
    assert py_normal(seed, index) == REFERENCE[key]
    assert float(patch[index]) == REFERENCE[key]


def test_matches_pure_python_on_a_small_patch():
    patch = noise_patch(42, 2, 5)
    expected = np.array([py_normal(42, i) for i in range(50)], dtype=np.float32).reshape(2, 5, 5)
    assert patch.dtype == np.float32 and patch.shape == (2, 5, 5)
    np.testing.assert_array_equal(patch, expected)


def test_counter_based_prefix_is_shape_independent():
    small, large = noise_patch(7, 1, 4).reshape(-1), noise_patch(7, 3, 16).reshape(-1)
    np.testing.assert_array_equal(small, large[:16])


def test_statistics_and_seed_sensitivity():
    a, b = noise_patch(3, 3, 256), noise_patch(4, 3, 256)
    assert abs(float(a.mean())) < 0.01 and abs(float(a.std()) - 1.0) < 0.01
    assert abs(float(np.corrcoef(a.ravel(), b.ravel())[0, 1])) < 0.01


def test_tiled_noise_is_periodic():
    patch = noise_patch(5, 3, 8)
    canvas = tiled_noise(patch, 21, 13)
    assert canvas.shape == (3, 21, 13)
    for y in range(21):
        for x in range(13):
            assert np.array_equal(canvas[:, y, x], patch[:, y % 8, x % 8])
    np.testing.assert_array_equal(tiled_noise(patch, 3, 2), patch[:, :3, :2])


def test_seed_range_checked():
    with pytest.raises(ValueError):
        noise_patch(-1, 3, 4)


def test_tiled_noise_equals_numpys_tiling():
    """The block-filled canvas equals the plain np.tile construction it replaced."""
    patch = noise_patch(9, 3, 16)
    for h, w in ((16, 16), (40, 23), (5, 70), (1, 1)):
        expected = np.tile(patch, (1, -(-h // 16), -(-w // 16)))[:, :h, :w]
        np.testing.assert_array_equal(tiled_noise(patch, h, w), expected)
