"""The quantity the encoder's search minimises: the fine training stage's loss, on decodes.

Using the training objective keeps the encoder and the decoder's training pulling the same
way; its rate term counts the syntax's real coded size, so a candidate that costs more
bytes must earn them back in distortion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..losses import fine_loss


@dataclass(frozen=True)
class Objective:
    lambda_d: float = 1.0   # L1
    lambda_p: float = 0.3   # 1 - MS-SSIM + band-energy matching
    lambda_f: float = 0.05  # syntax bits per pixel

    def __call__(self, decoded: torch.Tensor, original: torch.Tensor,
                 syntax_bpp: torch.Tensor | float) -> torch.Tensor:
        """Loss of (B, 3, H, W) decodes in [0, 1] against the original (mean over B)."""
        bpp = torch.as_tensor(syntax_bpp, dtype=torch.float32, device=decoded.device)
        loss, _ = fine_loss(decoded, original, bpp.expand(decoded.shape[0]),
                            self.lambda_d, self.lambda_p, self.lambda_f)
        return loss
