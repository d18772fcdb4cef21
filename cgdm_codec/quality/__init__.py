"""Image quality measures, each in one place: the metrics reports quote, and the numpy and
torch forms of the measures the training loss and the encoder's objective are made of.

| module | metric (uint8 pair -> float, float64) | numpy form / torch form (batches in [0, 1]) |
|---|---|---|
| ``images`` | ``psnr`` | |
| ``msssim`` | ``ssim``, ``ms_ssim`` | ``ms_ssim_numpy`` / ``ms_ssim_torch`` |
| ``haar`` | ``haarpsi`` | ``haarpsi_numpy`` / ``haarpsi_torch`` |
| ``bands`` | ``band_energy_ratios`` | ``laplacian_bands_*``, ``band_means_*``, ``band_energy_*`` |
| ``objective`` | | ``Objective`` (``.numpy`` / ``.torch``), ``fidelity_*``, ``fine_loss`` |

The numpy and torch forms of a measure are one function over ``backend.NUMPY`` or
``backend.TORCH`` where the arithmetic allows (``tests/quality/test_quality.py`` holds them equal
to float32 rounding). Nothing here imports torch until a torch form or a metric runs, so
the torch-free decoder and encoder (``runtime``, ``tuning.light``) use the numpy forms.
The metrics load on first use (``quality.psnr`` and the rest): the pipeline imports
``quality.objective``, and ``import cgdm_codec`` and ``cgdm info`` import neither numpy nor
torch.
"""

from __future__ import annotations

from typing import Any

#: The metrics, by the module that holds each.
_METRICS = {"band_energy_ratios": "bands", "haarpsi": "haar", "psnr": "images", "ms_ssim": "msssim",
            "ssim": "msssim"}

__all__ = sorted(_METRICS)


def __getattr__(name: str) -> Any:
    if name in _METRICS:
        import importlib

        value = getattr(importlib.import_module(f".{_METRICS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
