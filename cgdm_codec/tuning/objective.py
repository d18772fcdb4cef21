"""The encoder objective's old import path, kept as a re-export: ``Objective`` lives in
``cgdm_codec.quality.objective`` beside its numpy and torch forms. Import it from there."""

from ..quality.objective import Objective

__all__ = ["Objective"]
