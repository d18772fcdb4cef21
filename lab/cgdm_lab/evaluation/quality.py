"""The metrics of one decoded image against its reference.

PSNR, MS-SSIM and HaarPSI are this project's own (``cgdm_codec.quality``, float64, no
networks). VIF (pixel-domain, ``piq.vif_p``) comes from the maintained ``piq`` package.
LPIPS and DISTS need network weights (VGG16 from torchvision plus each metric's linear
layer): they are scored only when those files are already in the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``); nothing is
ever downloaded, and a missing file gives a one-line note instead.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from cgdm_codec.quality import haarpsi, ms_ssim, psnr
from cgdm_codec.artefacts import artefacts

VIF_MIN_SIDE = 41  # piq.vif_p's largest filter needs at least this many pixels per side

# metric -> (label, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "psnr": ("PSNR (dB)", True),
    "ms_ssim": ("MS-SSIM", True),
    "haarpsi": ("HaarPSI", True),
    "vif": ("VIF", True),
    "lpips": ("LPIPS", False),
    "dists": ("DISTS", False),
}

# artefact measure -> label (``cgdm_codec.artefacts``): reported beside the metrics, never
# turned into BD-rates (a generation that lowers BD-rate by painting a pattern is not better)
ARTEFACTS: dict[str, str] = {
    "period2": "period-2 ratio",
    "period2_ref": "original's period-2",
    "edge_overshoot": "edge overshoot (levels)",
    "flat_noise": "flat-area energy",
}

_NETWORK_FILES = {
    "lpips": ("https://github.com/photosynthesis-team/photosynthesis.metrics/releases/download/"
              "v0.4.0/lpips_weights.pt"),
    "dists": "https://github.com/photosynthesis-team/piq/releases/download/v0.4.1/dists_weights.pt",
}
_VGG16 = "https://download.pytorch.org/models/vgg16-397923af.pth"


def hub_checkpoints() -> Path:
    """Where torch.hub keeps downloaded weights (respects $TORCH_HOME)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def missing_weights(name: str) -> list[Path]:
    """The weight files ``name`` (lpips or dists) needs that are not in the hub cache."""
    folder = hub_checkpoints()
    wanted = [folder / Path(url).name for url in (_VGG16, _NETWORK_FILES[name])]
    return [p for p in wanted if not p.is_file()]


def _to_unit_tensor(x: np.ndarray):
    import torch

    return torch.from_numpy(np.array(x, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)


@dataclass
class Scorer:
    """Scores (reference, decoded) pairs; ``names`` are the metrics it reports, ``notes``
    say which were skipped and why."""

    device: str = "cpu"
    names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _networks: dict[str, Callable] = field(default_factory=dict)

    @classmethod
    def create(cls, device: str = "cpu", networks: bool = True) -> "Scorer":
        s = cls(device=device, names=["psnr", "ms_ssim", "haarpsi", "vif"])
        for name in ("lpips", "dists") if networks else ():
            absent = missing_weights(name)
            if absent:
                s.notes.append(f"{name.upper()} skipped: its weights are not in {hub_checkpoints()} "
                               f"(missing {', '.join(p.name for p in absent)}); nothing is downloaded")
                continue
            s._networks[name] = s._load_network(name)
            s.names.append(name)
        return s

    def _load_network(self, name: str) -> Callable:
        import piq
        import torch

        net = (piq.LPIPS if name == "lpips" else piq.DISTS)(reduction="none").to(self.device).eval()

        def score(ref, out) -> float:
            with torch.no_grad():
                return float(net(_to_unit_tensor(out).to(self.device), _to_unit_tensor(ref).to(self.device)))
        return score

    def __call__(self, ref: np.ndarray, out: np.ndarray) -> dict[str, float | None]:
        with one_thread():
            return self._score(ref, out)

    def _score(self, ref: np.ndarray, out: np.ndarray) -> dict[str, float | None]:
        row: dict[str, float | None] = {
            "psnr": psnr(ref, out),
            "ms_ssim": ms_ssim(ref, out),
            "haarpsi": haarpsi(ref, out),
            "vif": vif(ref, out),
            **artefacts(out, ref),
        }
        for name, fn in self._networks.items():
            row[name] = fn(ref, out)
        return row


@contextmanager
def one_thread() -> Iterator[None]:
    """Score on one torch thread: the metrics' many small float64 convolutions gain nothing
    from a second thread, and on a busy machine the thread barriers made them up to 100x
    slower (measured: MS-SSIM of a 64x48 image 1.6 s with 2 threads, 0.01 s with 1)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def vif(ref: np.ndarray, out: np.ndarray) -> float | None:
    """Pixel-domain VIF (piq.vif_p, on luma, 8-bit scale); None for images too small for it."""
    if min(ref.shape[:2]) < VIF_MIN_SIDE:
        return None
    import piq
    import torch

    with torch.no_grad():
        return float(piq.vif_p(_to_unit_tensor(out).double(), _to_unit_tensor(ref).double(),
                               data_range=1.0))
