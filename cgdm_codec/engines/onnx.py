"""The ONNX Runtime engine: the networks' exported graphs on numpy arrays, no torch."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from ..base.interface import BaseCodec, BaseEncoding
    from ..generations import Decoder, Generation
    from ..quality.objective import Objective
    from ..runtime import OrtDenoiser, OrtSyntaxGenerator
    from ..tuning.effort import Effort
    from . import Progress, StepProgress


@functools.lru_cache(maxsize=8)
def denoiser(generation: "Generation", threads: int | None) -> "OrtDenoiser":
    """The U-Net's graphs of ``generation`` as the sampler's ``Denoiser`` (sessions built once)."""
    from ..runtime import OrtDenoiser

    return OrtDenoiser(generation.graphs(), generation.config.unet, threads,
                       quantised=lambda: generation.quantised_graphs, multiple=generation.config.multiple)


@functools.lru_cache(maxsize=8)
def syntax_generator(generation: "Generation", threads: int | None) -> "OrtSyntaxGenerator":
    from ..runtime import OrtSyntaxGenerator

    return OrtSyntaxGenerator(generation.graphs()["syntax"], generation.path, generation.config.syntax, threads)


class OnnxEngine:
    """ONNX Runtime on the CPU, ``threads`` cores (None: the cores this process may use)."""

    name = "onnx"
    device = None

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def symbols(self, generation: "Generation", syntax: bytes) -> np.ndarray:
        from ..entropy_models.syntax_coding import decode_symbols

        return decode_symbols(generation.prior_table, syntax)

    def restore(self, decoder: "Decoder", x_tilde: np.ndarray, symbols: np.ndarray, condition: int, seed: int,
                steps: int, realism: float | None, tile_progress: Callable[[int, int], None]) -> np.ndarray:
        from ..sampling.restore import decode_canvas

        return decode_canvas(denoiser(decoder.generation, self.threads), x_tilde.transpose(2, 0, 1)[None], symbols,
                             condition, seed, steps, decoder.sampler_config, realism=realism,
                             tile_progress=tile_progress)

    def canvas(self, restored: np.ndarray) -> np.ndarray:
        return restored[0]

    def rgb(self, restored: np.ndarray) -> np.ndarray:
        out = restored[0].transpose(1, 2, 0)
        out *= 255.0
        return np.ascontiguousarray(np.rint(out, out=out).astype(np.uint8))

    def find_syntax(self, decoder: "Decoder", base: "BaseCodec", rgb: np.ndarray, enc: "BaseEncoding", seed: int,
                    steps: int, plan: "Effort", decide: bool, objective: "Objective", progress: "Progress",
                    step_progress: "StepProgress") -> tuple[bytes, int, bool]:
        """One pass of the generator (this engine never searches: ``engines.choose``)."""
        from ..tuning.light import single_pass

        gen = decoder.generation
        x_tilde = base.decode_rgb(enc.streams, rgb.shape[1], rgb.shape[0])
        found = single_pass(syntax_generator(gen, self.threads), denoiser(gen, self.threads), gen.prior_table,
                            decoder.sampler_config, rgb, x_tilde, enc.condition, seed, steps, plan, decide=decide,
                            progress=progress, steps_done=lambda i, n: step_progress("scoring steps", i, n),
                            objective=objective)
        return found.syntax, seed, found.base_only_wins
