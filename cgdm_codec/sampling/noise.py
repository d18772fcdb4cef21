"""The seeded starting noise x_T, defined by the format rather than by a library.

``torch.randn`` and NumPy's generators may change their streams between releases, yet a
.cgdm file must decode to the same image forever. So the noise is a counter-based
generator written out in full: SplitMix64 outputs addressed by element index, turned into
normals by Box-Muller in float64. Counter-based means any element can be computed without
the ones before it, and the result does not depend on evaluation order or chunking.

Definition (all integer arithmetic modulo 2^64, ``>>`` a logical shift):

    GAMMA  = 0x9E3779B97F4A7C15
    mix(z) = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
             z ^= z >> 31
    key    = mix(seed + GAMMA)
    r(n)   = mix(key + (n + 1) * GAMMA)          # the n-th SplitMix64 output from state key
    element i of the C x P x P patch (i = (c * P + y) * P + x):
        u1 = ((r(2i) >> 11) + 1) * 2^-53          # in (0, 1]
        u2 = (r(2i + 1) >> 11) * 2^-53            # in [0, 1)
        z  = float32(sqrt(-2 ln u1) * cos(2 pi u2))   # evaluated in float64
    x_T[c, y, x] = patch[c, y mod P, x mod P]      # periodic over the whole padded canvas
"""

from __future__ import annotations

import numpy as np

GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on a uint64 array (wrapping multiplication)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(MIX1)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int) -> np.uint64:
    """Derive the stream key so that nearby seeds give unrelated streams."""
    if not 0 <= seed <= MASK64:
        raise ValueError("seed must be an unsigned 64-bit integer")
    with np.errstate(over="ignore"):
        return _mix(np.array([(seed + GAMMA) & MASK64], dtype=np.uint64))[0]


def random_words(seed: int, start: int, count: int) -> np.ndarray:
    """Outputs r(start) .. r(start + count - 1) of the seeded counter-based stream."""
    n = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _mix(stream_key(seed) + n * np.uint64(GAMMA))


def standard_normals(seed: int, count: int) -> np.ndarray:
    """``count`` standard normal float32 values, two stream words per value."""
    words = random_words(seed, 0, 2 * count)
    a, b = words[0::2], words[1::2]
    u1 = ((a >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    u2 = (b >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return z.astype(np.float32)


def noise_patch(seed: int, channels: int, size: int) -> np.ndarray:
    """The (C, P, P) float32 Gaussian patch that every tile's x_T is cut from."""
    return standard_normals(seed, channels * size * size).reshape(channels, size, size)


def tiled_noise(patch: np.ndarray, height: int, width: int) -> np.ndarray:
    """Repeat the patch periodically over a (C, height, width) canvas anchored at (0, 0).

    One patch shared by all tiles is the paper's globally uniform boundary condition: every
    region of the image starts the reverse ODE from the same noise, hence the same style.
    The canvas is filled block by block, so a 24 MP canvas costs one canvas of memory.
    """
    c, ph, pw = patch.shape
    out = np.empty((c, height, width), dtype=patch.dtype)
    for top in range(0, height, ph):
        for left in range(0, width, pw):
            h, w = min(ph, height - top), min(pw, width - left)
            out[:, top:top + h, left:left + w] = patch[:, :h, :w]
    return out
