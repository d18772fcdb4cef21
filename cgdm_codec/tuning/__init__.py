"""Encoder-side search for what to write beside the base bitstream: the syntax and the seed.

The decoder is a deterministic function of the file, so the encoder can simulate it and
choose, among several candidate (syntax, seed) pairs, the one whose decode scores best.
Candidates come from the syntax generator itself, from a copy of it fine-tuned on this one
image (the paper's online optimisation), and from trying more than one noise seed. A
single pass (``light``) needs no torch; the search (``search``) does, and loads lazily.
"""

from __future__ import annotations

from typing import Any

from .effort import EFFORTS, Effort, resolve_effort

__all__ = ["EFFORTS", "Candidate", "Effort", "SearchResult", "resolve_effort", "search"]


def __getattr__(name: str) -> Any:
    if name in ("Candidate", "SearchResult", "search"):
        import importlib

        module = importlib.import_module(".search", __name__)
        # importing the submodule binds the package's ``search`` to it: the function wins
        globals().update(Candidate=module.Candidate, SearchResult=module.SearchResult, search=module.search)
        return globals()[name]
    raise AttributeError(name)
