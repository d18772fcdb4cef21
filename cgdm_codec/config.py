"""Model configurations as plain dataclasses (no torch import), saved next to the weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

NUM_QUALITIES = 6


@dataclass(frozen=True)
class BaseCodecConfig:
    """A mean-scale hyperprior whose rate is selected by per-quality gain vectors.

    One model serves all quality levels: ``lambdas[q-1]`` is the rate-distortion trade-off
    the gains for level q were trained for (loss = lambda * 255^2 * MSE + bpp).
    """

    N: int = 128
    M: int = 192
    lambdas: tuple[float, ...] = (0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.025)
    # Entropy parameters are rounded to this grid so encoder and decoder agree bit-exactly.
    param_grid_bits: int = 12

    @property
    def num_levels(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BaseCodecConfig":
        d = dict(d)
        d["lambdas"] = tuple(d["lambdas"])
        return cls(**d)
