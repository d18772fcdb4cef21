"""The CGDM bundle: U-Net, syntax generator and syntax prior, saved and loaded together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..diffusion_config import CgdmConfig
from ..entropy_models.syntax_prior import SyntaxPrior
from .syntax import SyntaxGenerator
from .unet import ConsistencyGuidedUNet


class Cgdm(nn.Module):
    """Everything of the diffusion stage that has weights.

    The decoder needs ``unet`` and ``prior``; only the encoder runs ``syntax``.
    """

    def __init__(self, cfg: CgdmConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.restoration is None:
            self.unet = ConsistencyGuidedUNet(cfg.unet, cfg.syntax.length)
        else:  # the one-pass network, in the U-Net's place (same roles for the sampler)
            from .restoration import RestorationNet

            self.unet = RestorationNet(cfg.unet, cfg.restoration, cfg.syntax.length)
        self.syntax = SyntaxGenerator(cfg.syntax)
        self.prior = SyntaxPrior(cfg.syntax)

    def manifest(self, **extra: Any) -> dict[str, Any]:
        return {"kind": "cgdm", "config": self.cfg.to_dict(), **extra}

    @classmethod
    def from_weights(cls, path: str | Path, map_location: str = "cpu") -> "Cgdm":
        """Build the model described by the manifest next to ``path`` and load its tensors."""
        from ..weights import load_tensors, read_manifest

        model = cls(CgdmConfig.from_dict(read_manifest(path)["config"]))
        model.load_state_dict({k: v.to(map_location) for k, v in load_tensors(path).items()})
        return model.eval()


def export_weights(model: Cgdm, path: str | Path, **manifest: Any) -> dict[str, Any]:
    """Build the coding tables and write safetensors + manifest (config, sha256, extras)."""
    from ..weights import save_weights

    from ..weights import ID_SCHEME

    model.prior.update_tables()
    return save_weights(path, dict(model.state_dict()), model.manifest(id_scheme=ID_SCHEME, **manifest))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

