"""Range coding of the syntax symbols with the prior's integer tables, without torch.

The tables (S, 2R + 1) of positive integers are built once from the learned prior
(``syntax_prior.SyntaxPrior.update_tables``) and stored with the weights; coding only reads
them, so the torch-free decoder and encoder code the syntax bit-exactly like the torch
ones. The byte format is described in ``syntax_prior``'s module docstring.
"""

from __future__ import annotations

import numpy as np


def _model_and_probs(table: np.ndarray) -> tuple[object, np.ndarray]:
    import constriction

    if int(table.min()) < 1:
        raise RuntimeError("syntax prior tables are not built; call update_tables()")
    return constriction.stream.model.Categorical(perfect=False), np.asarray(table, dtype=np.float64)


def encode_symbols(table: np.ndarray, symbols: np.ndarray) -> bytes:
    """Range-code S integer symbols (clamped to the coded range) into bytes."""
    import constriction

    length, alphabet = table.shape
    r = (alphabet - 1) // 2
    sym = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if sym.size != length:
        raise ValueError(f"expected {length} syntax symbols, got {sym.size}")
    idx = (np.clip(sym, -r, r) + r).astype(np.int32)
    model, probs = _model_and_probs(table)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(idx, model, probs)
    return encoder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def decode_symbols(table: np.ndarray, data: bytes) -> np.ndarray:
    """Inverse of ``encode_symbols``: int64 (S,)."""
    import constriction

    padded = data + bytes(-len(data) % 4)
    words = np.frombuffer(padded, dtype="<u4").astype(np.uint32)
    model, probs = _model_and_probs(table)
    idx = constriction.stream.queue.RangeDecoder(words).decode(model, probs)
    return np.asarray(idx, dtype=np.int64) - (table.shape[1] - 1) // 2
