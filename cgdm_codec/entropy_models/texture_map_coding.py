"""Range coding of the texture map's symbols (``sampling.texture_map``) with adaptive counts.

The map is small (two symbols per 64-px block: 192 for a 768×512 photo) and its statistics
change from photo to photo (flat skies code as runs of one symbol, foliage as high ones), so
instead of stored tables the coder learns as it goes: integer counts per context, starting
at 1, raised by ``INCREMENT`` after each symbol and halved when a context's total passes
``LIMIT``. The contexts are the band and a bucket of what is already known nearby: for the
finest band the rounded mean of the left and upper neighbours' symbols, for the second band
the finest band's symbol of the same block. Integer counts make the coding exact on every
machine (constriction's ``Categorical(perfect=False)`` from float64 integers, as the syntax).

Byte layout of the record (format 3.7): one byte log2 of the block side (6), then the
range coder's 32-bit words, little-endian, trailing zero bytes removed.
"""

from __future__ import annotations

import numpy as np

from ..errors import FormatError

INCREMENT = 24
LIMIT = 1024
BUCKETS = (0, 2)  # symbol 0 (no more than the base had), 1..2, above: three buckets per band


def _bucket(value: float) -> int:
    return int(sum(value > b for b in BUCKETS))


def _contexts(symbols: np.ndarray, band: int, y: int, x: int) -> int:
    if band == 1:
        return 3 + _bucket(symbols[0, y, x])
    near = [symbols[0, y, x - 1]] if x else []
    near += [symbols[0, y - 1, x]] if y else []
    return _bucket(np.rint(np.mean(near))) if near else 0


def _order(shape: tuple[int, int, int]):
    _, by, bx = shape
    for y in range(by):
        for x in range(bx):
            for band in (0, 1):
                yield band, y, x


class _Counts:
    def __init__(self, levels: int) -> None:
        self.table = np.ones((6, levels), dtype=np.float64)

    def probs(self, ctx: int) -> np.ndarray:
        row = self.table[ctx]
        return (row / row.sum())[None]

    def update(self, ctx: int, symbol: int) -> None:
        self.table[ctx, symbol] += INCREMENT
        if self.table[ctx].sum() > LIMIT:
            self.table[ctx] = np.ceil(self.table[ctx] / 2)


def encode_map(symbols: np.ndarray, block_log2: int, levels: int) -> bytes:
    """The record's bytes for symbols (2, By, Bx) in 0..levels-1."""
    import constriction

    model = constriction.stream.model.Categorical(perfect=False)
    counts, enc = _Counts(levels), constriction.stream.queue.RangeEncoder()
    for band, y, x in _order(symbols.shape):
        ctx, s = _contexts(symbols, band, y, x), int(symbols[band, y, x])
        enc.encode(np.array([s], dtype=np.int32), model, counts.probs(ctx))
        counts.update(ctx, s)
    return bytes((block_log2,)) + enc.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def decode_map(data: bytes, shape: tuple[int, int, int], block_log2: int, levels: int) -> np.ndarray:
    """Inverse of ``encode_map``; a record for another block size is refused."""
    import constriction

    if not data or data[0] != block_log2:
        raise FormatError(f"unsupported texture map (block size byte {data[0] if data else 'missing'}; "
                          f"this cgdm reads {block_log2})")
    body = data[1:] + bytes(-(len(data) - 1) % 4)
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(body, dtype="<u4").astype(np.uint32))
    model = constriction.stream.model.Categorical(perfect=False)
    counts, symbols = _Counts(levels), np.zeros(shape, dtype=np.int64)
    for band, y, x in _order(shape):
        ctx = _contexts(symbols, band, y, x)
        s = int(dec.decode(model, counts.probs(ctx))[0])
        symbols[band, y, x] = s
        counts.update(ctx, s)
    return symbols
