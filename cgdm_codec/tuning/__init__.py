"""Encoder-side search for what to write beside the base bitstream: the syntax and the seed.

The decoder is a deterministic function of the file, so the encoder can simulate it and
choose, among several candidate (syntax, seed) pairs, the one whose decode scores best.
Candidates come from the syntax generator itself, from a copy of it fine-tuned on this one
image (the paper's online optimisation), and from trying more than one noise seed.
"""

from .effort import EFFORTS, Effort, resolve_effort
from .search import Candidate, SearchResult, search

__all__ = ["EFFORTS", "Candidate", "Effort", "SearchResult", "resolve_effort", "search"]
