"""The quantity the encoder's search minimises: the fine training stage's loss, on decodes.

Using the training objective keeps the encoder and the decoder's training pulling the same
way; its rate term counts the syntax's real coded size, so a candidate that costs more
bytes must earn them back in distortion. Each generation's manifest records the lambdas it
was trained with (``objective``), and the encoder scores its decodes with those (``of``).
Torch is imported only when a score is taken, so the torch-free encoder can read the
weights from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Objective:
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

    def __call__(self, decoded: "torch.Tensor", original: "torch.Tensor",
                 syntax_bpp: "torch.Tensor | float") -> "torch.Tensor":
        """Loss of (B, 3, H, W) decodes in [0, 1] against the original (mean over B)."""
        import torch

        from ..losses import fine_loss

        bpp = torch.as_tensor(syntax_bpp, dtype=torch.float32, device=decoded.device)
        loss, _ = fine_loss(decoded, original, bpp.expand(decoded.shape[0]),
                            self.lambda_d, self.lambda_p, self.lambda_f, self.lambda_h)
        return loss
