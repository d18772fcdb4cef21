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
``backend.TORCH`` where the arithmetic allows (``tests/test_quality.py`` holds them equal
to float32 rounding). Nothing here imports torch until a torch form or a metric runs, so
the torch-free decoder and encoder (``runtime``, ``tuning.light``) use the numpy forms.
"""

from .bands import band_energy_ratios
from .haar import haarpsi
from .images import psnr
from .msssim import ms_ssim, ssim

__all__ = ["band_energy_ratios", "haarpsi", "ms_ssim", "psnr", "ssim"]
