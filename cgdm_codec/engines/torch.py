"""The torch engine: the U-Net itself (CUDA, bfloat16 on AMX CPUs, the encoder's search)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..base.interface import BaseCodec, BaseEncoding
    from ..generations import Decoder, Generation
    from ..quality.objective import Objective
    from ..tuning.effort import Effort
    from . import Progress, StepProgress


class TorchEngine:
    """Torch on ``device``; the models are the generations' (``Generation.torch_model``)."""

    name = "torch"

    def __init__(self, device: "torch.device") -> None:
        self.device = device

    def symbols(self, generation: "Generation", syntax: bytes) -> "torch.Tensor":
        return generation.torch_model().prior.decode_syntax(syntax)

    def restore(self, decoder: "Decoder", x_tilde: Any, symbols: "torch.Tensor", condition: int, seed: int,
                steps: int, realism: float | None, tile_progress: Callable[[int, int], None]) -> "torch.Tensor":
        """x~ a weightless base's uint8 array (it travels as uint8) or a learned base's tensor."""
        import numpy as np

        from ..base.interface import rgb_to_uint8_tensor
        from ..sampling.restore import restore

        if isinstance(x_tilde, np.ndarray):
            x_tilde = rgb_to_uint8_tensor(x_tilde)
        return restore(decoder.generation.torch_model(decoder.sampler), x_tilde, symbols, condition, seed, steps,
                       device=self.device, realism=realism, tile_progress=tile_progress, consume_input=True)

    def canvas(self, restored: "torch.Tensor") -> "np.ndarray":
        return restored.numpy()[0]

    def rgb(self, restored: "torch.Tensor") -> "np.ndarray":
        from ..base.interface import tensor_to_rgb

        return tensor_to_rgb(restored)

    def find_syntax(self, decoder: "Decoder", base: "BaseCodec", rgb: "np.ndarray", enc: "BaseEncoding", seed: int,
                    steps: int, plan: "Effort", decide: bool, objective: "Objective", progress: "Progress",
                    step_progress: "StepProgress") -> tuple[bytes, int, bool]:
        """One pass or a search (``tuning.search``)."""
        from ..base.interface import rgb_to_tensor
        from ..tuning.search import search

        cgdm = decoder.generation.torch_model(decoder.sampler)
        x = rgb_to_tensor(rgb)
        x_tilde = base.reconstruct(enc.streams, rgb.shape[1], rgb.shape[0], enc.level, self.device)
        if plan.searches:
            progress(f"searching syntax and seed ({plan.finetune_iters} fine-tuning iterations, "
                     f"{plan.seeds} seed{'s' if plan.seeds > 1 else ''})")
        found = search(cgdm, x, x_tilde, enc.condition, seed, plan, steps, device=self.device,
                       progress=step_progress, decide=decide, objective=objective)
        if found.scores:
            progress(f"chose the {found.best.source} syntax with seed {found.best.seed} "
                     f"(scored {len(found.scores)} candidates on the {found.scored_on})")
        return cgdm.prior.encode_syntax(found.best.symbols), found.best.seed, found.base_only_wins
