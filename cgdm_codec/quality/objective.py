"""The encoder's objective and the fine training stage's loss: one formula, two forms.

    lambda_d * L1 + lambda_p * (1 - MS-SSIM + band-energy difference)
        + lambda_h * (1 - HaarPSI) + lambda_f * syntax bpp

per image, averaged over the batch, images in [0, 1]. ``_fidelity`` writes the distortion
part once over the measures of a backend; ``fidelity_torch`` (training, differentiable)
and ``fidelity_numpy`` (the torch-free encoder) are that function with torch's or numpy's
measures, so a change to the loss reaches both. Using the training loss as the encoder's
objective keeps the encoder and the decoder's training pulling the same way; its rate term
counts the syntax's real coded size, so a candidate that costs more bytes must earn them
back in distortion. Each generation's manifest records the lambdas it was trained with
(``objective``), and the encoder scores its decodes with those (``Objective.of``).

The paper's perceptual terms (LPIPS, DISTS) need ImageNet-trained features that cannot be
downloaded here; MS-SSIM (local structure and contrast at five scales, blind to small
uniform brightness shifts) and band-energy matching (``bands``) stand in for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class _Measures:
    per_image: Callable[[Any], Any]
    ms_ssim: Callable[[Any, Any], Any]
    band_energy: Callable[[Any, Any], Any]
    haarpsi: Callable[[Any, Any], Any]


def _measures(form: str) -> _Measures:
    """The measures of the ``numpy`` or ``torch`` form. Imported here, not at the top: the
    pipeline imports ``Objective`` and ``import cgdm_codec`` must not import numpy."""
    from . import backend, bands, haar, msssim

    return _Measures(getattr(backend, form.upper()).per_image, getattr(msssim, f"ms_ssim_{form}"),
                     getattr(bands, f"band_energy_{form}"), getattr(haar, f"haarpsi_{form}"))


def _fidelity(m: _Measures, x_hat: Any, x: Any, lambda_d: float, lambda_p: float,
              lambda_h: float) -> tuple[Any, dict[str, Any]]:
    """The distortion per image (B,) and its parts (per image), written once."""
    l1 = m.per_image(abs(x_hat - x))
    perceptual = (1.0 - m.ms_ssim(x_hat, x)) + m.band_energy(x_hat, x)
    per_image = lambda_d * l1 + lambda_p * perceptual
    parts = {"l1": l1, "perceptual": perceptual}
    if lambda_h:
        haar = 1.0 - m.haarpsi(x_hat, x)
        per_image = per_image + lambda_h * haar
        parts["haarpsi"] = haar
    return per_image, parts


def perceptual_numpy(x_hat: np.ndarray, x: np.ndarray) -> np.ndarray:
    """1 - MS-SSIM + band-energy difference per image (B,) of float32 arrays."""
    m = _measures("numpy")
    return (1.0 - m.ms_ssim(x_hat, x)) + m.band_energy(x_hat, x)


def perceptual_torch(x_hat: "torch.Tensor", x: "torch.Tensor") -> "torch.Tensor":
    """1 - MS-SSIM + band-energy difference per image (B,), float32 with autocast off."""
    import torch

    m = _measures("torch")
    with torch.autocast(x.device.type, enabled=False):
        x_hat, x = x_hat.float(), x.float()
        return (1.0 - m.ms_ssim(x_hat, x)) + m.band_energy(x_hat, x)


def fidelity_numpy(x_hat: np.ndarray, x: np.ndarray, lambda_d: float, lambda_p: float,
                   lambda_h: float = 0.0) -> np.ndarray:
    """lambda_d * L1 + lambda_p * perceptual + lambda_h * (1 - HaarPSI) per image (B,),
    float32 arrays in [0, 1]."""
    import numpy as np

    per_image, _ = _fidelity(_measures("numpy"), x_hat.astype(np.float32), x.astype(np.float32),
                             lambda_d, lambda_p, lambda_h)
    return per_image


def fidelity_torch(x_hat: "torch.Tensor", x: "torch.Tensor", lambda_d: float, lambda_p: float,
                   lambda_h: float = 0.0) -> tuple["torch.Tensor", dict[str, "torch.Tensor"]]:
    """lambda_d * L1 + lambda_p * perceptual + lambda_h * (1 - HaarPSI) per image (B,), and
    its logged parts (batch means, detached); shared by the fine stage and the realism
    objective. Float32 with autocast off."""
    import torch

    with torch.autocast(x.device.type, enabled=False):
        per_image, parts = _fidelity(_measures("torch"), x_hat.float(), x.float(), lambda_d, lambda_p, lambda_h)
    return per_image, {k: v.mean().detach() for k, v in parts.items()}


def fine_loss(x_hat: "torch.Tensor", x: "torch.Tensor", rate_bpp: "torch.Tensor", lambda_d: float,
              lambda_p: float, lambda_f: float,
              lambda_h: float = 0.0) -> tuple["torch.Tensor", dict[str, "torch.Tensor"]]:
    """The fidelity loss + lambda_f * syntax bpp, averaged over the batch, and its parts."""
    per_image, parts = fidelity_torch(x_hat, x, lambda_d, lambda_p, lambda_h)
    parts["bpp"] = rate_bpp.mean().detach()
    return (per_image + lambda_f * rate_bpp).mean(), parts


@dataclass(frozen=True)
class Objective:
    """The quantity the encoder minimises, with a generation's lambdas; ``torch`` and
    ``numpy`` score decodes (calling the object picks the form by the input's type)."""

    lambda_d: float = 1.0   # L1
    lambda_p: float = 0.3   # 1 - MS-SSIM + band-energy matching
    lambda_f: float = 0.05  # syntax bits per pixel
    lambda_h: float = 0.0   # 1 - HaarPSI

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> "Objective":
        """The objective a generation was trained with (its manifest's ``objective``; the
        defaults for generations whose manifest has none, which were trained with them)."""
        record = dict(manifest.get("objective") or {})
        if "lambda_rate" in record:
            record["lambda_f"] = record.pop("lambda_rate")
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in record.items() if k in names})

    def torch(self, decoded: "torch.Tensor", original: "torch.Tensor",
              syntax_bpp: "torch.Tensor | float") -> "torch.Tensor":
        """Loss of (B, 3, H, W) decodes in [0, 1] against the original (mean over B)."""
        import torch

        bpp = torch.as_tensor(syntax_bpp, dtype=torch.float32, device=decoded.device)
        loss, _ = fine_loss(decoded, original, bpp.expand(decoded.shape[0]),
                            self.lambda_d, self.lambda_p, self.lambda_f, self.lambda_h)
        return loss

    def numpy(self, decoded: np.ndarray, original: np.ndarray, syntax_bpp: float) -> float:
        """``torch``'s value for (B, 3, H, W) arrays in [0, 1], without torch."""
        per_image = fidelity_numpy(decoded, original, self.lambda_d, self.lambda_p, self.lambda_h)
        return float((per_image + self.lambda_f * syntax_bpp).mean())

    def __call__(self, decoded: Any, original: Any, syntax_bpp: Any) -> Any:
        """``numpy`` for numpy arrays, else ``torch``."""
        import numpy as np

        form = self.numpy if isinstance(decoded, np.ndarray) else self.torch
        return form(decoded, original, syntax_bpp)
