"""The metrics' old import path, kept as a re-export: they live in ``cgdm_codec.quality``
(``quality.images.psnr``, ``quality.msssim``, ``quality.haar``, ``quality.bands``), where
their conventions are written down. Import from ``cgdm_codec.quality`` in new code."""

from .quality import band_energy_ratios, haarpsi, ms_ssim, psnr, ssim

__all__ = ["band_energy_ratios", "haarpsi", "ms_ssim", "psnr", "ssim"]
