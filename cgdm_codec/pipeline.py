"""The codec pipeline: image <-> base codec (<-> diffusion post-processor) <-> container bytes.

This is the only module that ties the models to the file format. Torch and CompressAI are
imported here, never by the container or the CLI's fast paths.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn.functional as F

# CompressAI still decorates helpers with torch.jit.script, which newer torch warns about.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

from . import imageio  # noqa: E402
from .container import CgdmFile, FormatError, parse, serialize  # noqa: E402
from .device import autocast_for, pick_device  # noqa: E402
from .errors import WeightsError  # noqa: E402
from .models.base_codec import BaseStreams, VariableRateHyperprior  # noqa: E402
from .weights import BASE_WEIGHTS, CGDM_WEIGHTS, verified_manifest, weights_dir, weights_id  # noqa: E402

if TYPE_CHECKING:
    from .models.cgdm import Cgdm

BASE_CODEC_ID = 1
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Bundle:
    """The installed weights: the base codec, and the diffusion stage when present."""

    base: VariableRateHyperprior
    base_sha256: str
    cgdm: "Cgdm | None" = None
    cgdm_sha256: str | None = None

    def weights_id(self, diffusion: bool) -> bytes:
        if diffusion:
            if self.cgdm_sha256 is None:
                raise WeightsError("the diffusion weights are not installed")
            return weights_id(self.base_sha256, self.cgdm_sha256)
        return weights_id(self.base_sha256)


def base_weights_path() -> Path:
    override = os.environ.get("CGDM_BASE_WEIGHTS")
    return Path(override) if override else weights_dir() / f"{BASE_WEIGHTS}.safetensors"


def cgdm_weights_path() -> Path | None:
    """Where the diffusion weights are; CGDM_DIFFUSION_WEIGHTS=none disables the stage."""
    override = os.environ.get("CGDM_DIFFUSION_WEIGHTS")
    if override is not None:
        return None if override.lower() in ("", "none") else Path(override)
    return weights_dir() / f"{CGDM_WEIGHTS}.safetensors"


@functools.lru_cache(maxsize=2)
def _load_bundle(base_path: Path, cgdm_path: Path | None) -> Bundle:
    """Load (once per process) the weights after checking each file against its manifest."""
    if not base_path.is_file():
        raise WeightsError(f"base-codec weights not found at {base_path}")
    base_sha = verified_manifest(base_path)["sha256"]
    bundle = Bundle(VariableRateHyperprior.from_weights(base_path), base_sha)
    if cgdm_path is not None and cgdm_path.is_file():
        from .models.cgdm import Cgdm

        cgdm_sha = verified_manifest(cgdm_path)["sha256"]
        bundle.cgdm = Cgdm.from_weights(cgdm_path)
        bundle.cgdm_sha256 = cgdm_sha
    return bundle


def load_bundle() -> Bundle:
    return _load_bundle(base_weights_path(), cgdm_weights_path())


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    # clamp makes the one copy; the rest works in place (same values, less peak memory).
    return (x[0].clamp(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy())


def _base_reconstruction(model: VariableRateHyperprior, streams: BaseStreams, q_index: int,
                         width: int, height: int, dev: torch.device) -> torch.Tensor:
    """x~ (1, 3, H, W) in [0, 1] on the CPU, exactly as a decoder computes it."""
    try:
        y_hat = model.decompress_latent(streams, q_index)
    except (RuntimeError, ValueError, IndexError) as e:
        raise FormatError(f"base-codec stream is corrupted ({e})") from None
    model.place(dev)
    with torch.no_grad(), autocast_for(dev):
        x_tilde = model.synthesis(y_hat.to(dev).contiguous(memory_format=torch.channels_last))
    return x_tilde[..., :height, :width].float().cpu()


StepProgress = Callable[[str, int, int], None]


def _steps_to(progress: Progress, step_progress: StepProgress | None) -> StepProgress:
    """Step counts go to ``step_progress`` when given, else become messages."""
    return step_progress or (lambda what, i, n: progress(f"{what} {i}/{n}"))


def encode_image(img: imageio.CodecImage, quality: int, *, diffusion: bool | None = None,
                 seed: int = 0, steps: int | None = None, effort: str = "default",
                 finetune_iters: int | None = None, seeds: int | None = None,
                 finetune: bool = True, device: str = "auto", progress: Progress = _quiet,
                 step_progress: StepProgress | None = None) -> bytes:
    """Compress a prepared image at quality 1..6 into .cgdm bytes.

    ``diffusion`` None means: use the diffusion stage when its weights are installed.
    ``effort`` ("fast", "default", "max") sets how hard the encoder searches for the
    syntax and seed it writes; ``finetune_iters``, ``seeds`` and ``finetune=False``
    override the preset (see ``cgdm_codec.tuning``). ``seed`` is the first seed tried.
    """
    if not 1 <= quality <= 6:
        raise ValueError("quality must be 1..6")
    dev = pick_device(device)
    from .tuning import resolve_effort

    plan = resolve_effort(effort, dev.type, finetune_iters=finetune_iters, seeds=seeds, finetune=finetune)
    progress("loading weights")
    bundle = load_bundle()
    use_diffusion = bundle.cgdm is not None if diffusion is None else diffusion
    wid = bundle.weights_id(use_diffusion)
    model = bundle.base.place(dev)
    progress("base codec: analysis and entropy coding")
    x = _to_tensor(img.rgb)
    with torch.no_grad(), autocast_for(dev):
        padded = _pad_to(x, model.MULTIPLE).to(dev).contiguous(memory_format=torch.channels_last)
        streams = model.compress(padded, quality - 1)
    syntax, steps_field = None, None
    if use_diffusion:
        cgdm = bundle.cgdm
        assert cgdm is not None
        progress("syntax: simulating the decoder's base reconstruction")
        x_tilde = _base_reconstruction(model, streams, quality - 1, img.width, img.height, dev)
        from .tuning import search

        steps_field = steps or cgdm.cfg.sampler.steps
        if plan.searches:
            progress(f"searching syntax and seed ({plan.finetune_iters} fine-tuning iterations, "
                     f"{plan.seeds} seed{'s' if plan.seeds > 1 else ''})")
        found = search(cgdm, x, x_tilde, quality - 1, seed, plan, steps_field, device=dev,
                       progress=_steps_to(progress, step_progress))
        if found.scores:
            progress(f"chose the {found.best.source} syntax with seed {found.best.seed} "
                     f"(scored {len(found.scores)} candidates on the {found.scored_on})")
        seed = found.best.seed
        syntax = cgdm.prior.encode_syntax(found.best.symbols)
    alpha = imageio.encode_alpha(img.alpha) if img.alpha is not None else None
    f = CgdmFile(
        quality=quality, width=img.width, height=img.height, weights_id=wid,
        base_streams=(streams.z, streams.y), colour_mode=img.mode, base_codec=BASE_CODEC_ID,
        seed=seed, steps=steps_field, syntax=syntax, alpha=alpha,
    )
    return serialize(f)


def encode(img, quality: int, device: str = "auto", progress: Progress = _quiet, **options) -> bytes:
    """Compress a Pillow image (or a path) at quality 1..6 into .cgdm bytes."""
    prepared = imageio.load(img) if isinstance(img, (str, Path)) else imageio.from_pil(img)
    return encode_image(prepared, quality, device=device, progress=progress, **options)


def _latent_shape(width: int, height: int, multiple: int) -> tuple[int, int]:
    return (-(-height // multiple), -(-width // multiple))


def decode_file(f: CgdmFile, *, base_only: bool = False, steps: int | None = None,
                device: str = "auto", progress: Progress = _quiet,
                step_progress: StepProgress | None = None) -> np.ndarray:
    """The decoded RGB image (H, W, 3) uint8 of a parsed container."""
    if f.base_codec != BASE_CODEC_ID:
        raise FormatError(f"unknown base codec id {f.base_codec}")
    dev = pick_device(device)
    progress("loading weights")
    bundle = load_bundle()
    if f.diffusion and bundle.cgdm is None:
        raise WeightsError("this file needs the diffusion weights, which are not installed")
    if f.weights_id != bundle.weights_id(f.diffusion):
        raise WeightsError(
            f"this file needs weights {f.weights_id.hex()}, but the installed weights are "
            f"{bundle.weights_id(f.diffusion).hex()}; decode it with the cgdm version that wrote it")
    model = bundle.base
    progress("base codec: entropy decoding and synthesis")
    streams = BaseStreams(z=f.base_streams[0], y=f.base_streams[1],
                          latent_shape=_latent_shape(f.width, f.height, model.MULTIPLE))
    x_tilde = _base_reconstruction(model, streams, f.quality - 1, f.width, f.height, dev)
    if f.diffusion and not base_only:
        from .sampling.restore import restore

        cgdm = bundle.cgdm
        assert cgdm is not None and f.syntax is not None
        try:
            symbols = cgdm.prior.decode_syntax(f.syntax)
        except Exception as e:  # constriction raises assorted errors on garbage
            raise FormatError(f"syntax section is corrupted ({e})") from None
        report = _steps_to(progress, step_progress)
        x_tilde = restore(cgdm, x_tilde, symbols, f.quality - 1, f.seed, steps or f.steps, device=dev,
                          progress=lambda i, n: report("diffusion steps", i, n), consume_input=True)
    return _to_uint8(x_tilde)


def decode(data: bytes, base_only: bool = False, device: str = "auto",
           progress: Progress = _quiet, steps: int | None = None):
    """Decode .cgdm bytes to a Pillow image (mode RGB, L, RGBA or LA as encoded)."""
    f = parse(data)
    rgb = decode_file(f, base_only=base_only, steps=steps, device=device, progress=progress)
    alpha = imageio.decode_alpha(f.alpha, f.width, f.height) if f.colour_mode.has_alpha else None
    return imageio.to_pil(rgb, f.colour_mode, alpha)
