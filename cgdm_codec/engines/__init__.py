"""What runs the diffusion stage's networks: ONNX Runtime or torch, behind one protocol.

``onnx`` (numpy + ONNX Runtime, float32 on the CPU, or the int8 graphs under
``runtime.precision_scope``) needs no torch: ``import torch`` alone takes longer than a
few-step decode. ``torch`` runs the U-Net itself: CUDA, bfloat16 on CPUs with AMX, the
learned base and the encoder's search. ``choose`` is the one place that decides (see its
docstring); the pipeline then calls the engine without knowing which it got.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Protocol

from .. import generations
from ..errors import WeightsError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..base.interface import BaseCodec, BaseEncoding
    from ..generations import Decoder, Generation
    from ..quality.objective import Objective
    from ..tuning.effort import Effort

RUNTIMES = ("auto", "onnx", "torch")
ENV_RUNTIME = "CGDM_RUNTIME"
Progress = Callable[[str], None]
StepProgress = Callable[[str, int, int], None]


class Engine(Protocol):
    """What the pipeline asks of a runtime. ``device`` is the torch device (None for ONNX
    Runtime, which runs on the CPU without torch)."""

    name: str
    device: "torch.device | None"

    def symbols(self, generation: "Generation", syntax: bytes) -> Any:
        """The syntax symbols of a file's syntax section, decoded with ``generation``'s prior."""

    def restore(self, decoder: "Decoder", x_tilde: Any, symbols: Any, condition: int, seed: int, steps: int,
                realism: float | None, tile_progress: Callable[[int, int], None]) -> Any:
        """The diffusion stage's output of x~ (the base's uint8 (H, W, 3) decode, or a learned
        base's float tensor), by ``decoder``'s network and sampler settings."""

    def canvas(self, restored: Any) -> "np.ndarray":
        """The restored picture as a writable float32 (3, H, W) array in [0, 1] (a view)."""

    def rgb(self, restored: Any) -> "np.ndarray":
        """The restored picture as (H, W, 3) uint8, rounded to nearest."""

    def find_syntax(self, decoder: "Decoder", base: "BaseCodec", rgb: "np.ndarray", enc: "BaseEncoding", seed: int,
                    steps: int, plan: "Effort", decide: bool, objective: "Objective", progress: Progress,
                    step_progress: StepProgress) -> tuple[bytes, int, bool]:
        """The encoder's syntax for an image: (syntax bytes, seed, whether the base-only decode
        scores better), from one pass of the generator or a search (``plan``)."""


def _cuda_hint() -> bool:
    """Whether an NVIDIA device node exists: a check that needs no torch import."""
    return os.path.exists("/dev/nvidiactl")


def release() -> None:
    """Give back what built networks keep between runs: ONNX Runtime keeps each session's
    largest activations in its arena (~150 MB for the fidelity network and ~330 MB for the
    realism network after a 3.8 MP decode). For work that runs none of them afterwards (an
    encode's texture-map fit, a decode's texture stage); a later run builds its sessions
    again (from the graph cache, ~10 ms a graph)."""
    from .. import runtime

    runtime.session.cache_clear()


def choose(requested: str | None, device: str, generation: "Generation | None", network_base: bool,
           search: str | None = None) -> str:
    """``onnx`` or ``torch`` for the diffusion stage.

    ``requested`` (``--runtime``; None or ``auto``: env CGDM_RUNTIME, else auto). ``auto``
    takes ONNX Runtime wherever the weights have exported graphs, except for the learned
    base (torch only) and CUDA (asked for, or present with torch installed). ``search``
    says why the encoder needs torch's gradients (its per-image search), if it does.
    """
    if requested in (None, "auto"):
        requested = os.environ.get(ENV_RUNTIME) or "auto"
    if requested not in RUNTIMES:
        raise ValueError(f"unknown runtime {requested!r} (choose from {', '.join(RUNTIMES)})")
    has_graphs = generation is not None and generation.has_graphs
    if requested == "onnx" and device == "cuda":
        raise ValueError("--runtime onnx runs on the CPU; use --device cpu or auto")
    if requested == "onnx" and network_base:
        raise ValueError("the learned base runs in torch only; use --runtime torch or auto")
    if requested == "onnx" and not has_graphs:
        raise WeightsError("these diffusion weights have no ONNX graphs installed; use --runtime torch")
    if requested == "onnx" or (requested == "auto" and has_graphs and not network_base and device != "cuda"
                                and not (device == "auto" and _cuda_hint() and generations.torch_installed())):
        if search is None:
            return "onnx"
        generations.require_torch(search)
        return "torch"
    generations.require_torch("this file's decoder" if network_base else "the torch runtime")
    return "torch"


def start(name: str, device: str = "auto", threads: int | None = None) -> Engine:
    """The engine ``name`` (``choose``'s answer) on ``device`` with ``threads`` ONNX Runtime threads."""
    if name == "onnx":
        from .onnx import OnnxEngine

        return OnnxEngine(threads)
    from .torch import TorchEngine

    return TorchEngine(torch_device(device))


def pick(requested: str | None, device: str, generation: "Generation | None", network_base: bool,
         threads: int | None = None, search: str | None = None) -> Engine:
    """``start(choose(...))``: the engine that runs ``generation`` (see ``choose``)."""
    return start(choose(requested, device, generation, network_base, search), device, threads)


def torch_device(name: str) -> "torch.device":
    """The torch device ``name`` (``auto``: CUDA where present), torch's threads set up."""
    from ..device import pick_device

    return pick_device(name)


def base_device(engine: Engine | None, device: str, network_base: bool) -> "torch.device | None":
    """Where a base codec runs: the engine's device, or, for a learned base without the
    diffusion stage, the asked one; None (no torch) for a weightless base."""
    if engine is not None and engine.device is not None:
        return engine.device
    return torch_device(device) if network_base else None
