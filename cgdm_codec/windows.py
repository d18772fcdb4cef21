"""Which parts of a large image a pass reads when it cannot afford all of them: indices
spread evenly over a range (the encoder's scored decoder tiles), and the syntax generator's
pooling windows. Torch-free and below the models, which pool the same windows in training
and in the torch encoder."""

from __future__ import annotations


def spread(count: int, n: int) -> list[int]:
    """``n`` indices spread evenly over range(count) (all of them when n >= count)."""
    if n >= count:
        return list(range(count))
    if n <= 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (n - 1)) for i in range(n)})


def pool_windows(height: int, width: int, tile: int, most: int | None = None) -> list[tuple[int, int]]:
    """Top-left corners of the ``tile``-sized windows the syntax generator pools, row by row;
    with ``most``, only that many of them, spread evenly: the generator reads a photo's
    statistics, which a spread of a large photo's windows gives at a fraction of the time."""
    corners = [(top, left) for top in range(0, height, tile) for left in range(0, width, tile)]
    return corners if most is None else [corners[i] for i in spread(len(corners), most)]
