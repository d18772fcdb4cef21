"""What the encoder reads of a large image: spread picks and the syntax pooling windows."""

from __future__ import annotations

from cgdm_codec.windows import pool_windows, spread


def test_spread_picks_distinct_indices_from_end_to_end():
    assert spread(5, 9) == [0, 1, 2, 3, 4]
    assert spread(10, 1) == [5]
    assert spread(10, 3) == [0, 4, 9] or spread(10, 3) == [0, 5, 9]
    assert len(spread(100, 12)) == 12
    assert spread(96, 24)[0] == 0 and spread(96, 24)[-1] == 95
    assert len(set(spread(96, 24))) == 24
    assert spread(7, 1) == [3]


def test_pool_windows_cover_the_image_or_a_spread_of_it():
    every = pool_windows(1100, 1300, 512)
    assert every == [(t, l) for t in (0, 512, 1024) for l in (0, 512, 1024)]
    assert pool_windows(1100, 1300, 512, 100) == every
    part = pool_windows(4000, 6000, 512, 24)
    assert len(part) == 24 and set(part) < set(pool_windows(4000, 6000, 512))
    assert {t for t, _ in part} == set(range(0, 4000, 512))  # every row of windows is read
