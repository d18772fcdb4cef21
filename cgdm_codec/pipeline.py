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

# CompressAI still decorates helpers with torch.jit.script, which newer torch warns about.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

from . import imageio  # noqa: E402
from .container import CgdmFile, ColourMode, FormatError, parse, serialize  # noqa: E402
from .device import autocast_for, pick_device  # noqa: E402
from .errors import WeightsError  # noqa: E402
from .base.interface import rgb_to_tensor  # noqa: E402
from .base.registry import DEFAULT_BACKEND, backend, create  # noqa: E402
from .weights import decoder_identity, verified_manifest, weights_dir, weights_id  # noqa: E402

if TYPE_CHECKING:
    from .base.interface import BaseCodec
    from .models.cgdm import Cgdm

Progress = Callable[[str], None]
#: The weights id of a file that needs no network at all (AV1 base, no diffusion stage).
NO_WEIGHTS_ID = bytes(4)
ENV_BASE = "CGDM_BASE"


def _quiet(_: str) -> None:
    pass


@dataclass
class Bundle:
    """One base codec and the diffusion stage trained on its decodes (when installed)."""

    base: "BaseCodec"
    cgdm: "Cgdm | None" = None
    cgdm_identity: str | None = None

    def weights_id(self, diffusion: bool) -> bytes:
        parts = [self.base.identity()]
        if diffusion:
            if self.cgdm_identity is None:
                raise WeightsError("the diffusion weights are not installed")
            parts.append(self.cgdm_identity)
        parts = [p for p in parts if p]
        return weights_id(*parts) if parts else NO_WEIGHTS_ID


def default_base() -> str:
    """The base codec an encode uses unless told: env CGDM_BASE, else the registry's default."""
    return os.environ.get(ENV_BASE) or DEFAULT_BACKEND


def base_weights_path() -> Path:
    from .base.hyperprior import weights_path

    return weights_path()


def cgdm_weights_path(base: str = "hyperprior") -> Path | None:
    """Where the diffusion weights for ``base`` are; CGDM_DIFFUSION_WEIGHTS=none disables the stage."""
    override = os.environ.get("CGDM_DIFFUSION_WEIGHTS")
    if override is not None:
        return None if override.lower() in ("", "none") else Path(override)
    return weights_dir() / f"{backend(base).diffusion_weights}.safetensors"


@functools.lru_cache(maxsize=4)
def _load_bundle(base: str, base_path: Path, cgdm_path: Path | None) -> Bundle:
    """Load (once per process) the weights after checking each file against its manifest."""
    bundle = Bundle(create(base))
    if cgdm_path is not None and cgdm_path.is_file():
        from .models.cgdm import Cgdm

        manifest = verified_manifest(cgdm_path)
        bundle.cgdm = Cgdm.from_weights(cgdm_path)
        bundle.cgdm_identity = decoder_identity(manifest)
    return bundle


def load_bundle(base: str | int = "hyperprior") -> Bundle:
    name = backend(base).name
    return _load_bundle(name, base_weights_path(), cgdm_weights_path(name))


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    # clamp makes the one copy; the rest works in place (same values, less peak memory).
    return (x[0].clamp(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy())


StepProgress = Callable[[str, int, int], None]


def _steps_to(progress: Progress, step_progress: StepProgress | None) -> StepProgress:
    """Step counts go to ``step_progress`` when given, else become messages."""
    return step_progress or (lambda what, i, n: progress(f"{what} {i}/{n}"))


def encode_image(img: imageio.CodecImage, quality: int, *, diffusion: bool | None = None,
                 seed: int = 0, steps: int | None = None, effort: str = "default",
                 finetune_iters: int | None = None, seeds: int | None = None,
                 finetune: bool = True, device: str = "auto", progress: Progress = _quiet,
                 step_progress: StepProgress | None = None, base: str | None = None,
                 fine: int | None = None) -> bytes:
    """Compress a prepared image at quality 1..6 into .cgdm bytes.

    ``base`` names the base codec (default: ``registry.DEFAULT_BACKEND``); ``fine`` is a
    backend-specific fine quality (AV1: Pillow's AVIF quality 0..100) instead of the level.
    ``diffusion`` None means: use the diffusion stage when its weights are installed and
    its decode beats the base-only decode on the encoder's objective.
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
    bundle = load_bundle(base or default_base())
    use_diffusion = bundle.cgdm is not None if diffusion is None else diffusion
    if use_diffusion and bundle.cgdm is None:
        raise WeightsError("the diffusion weights are not installed")
    progress(f"base codec ({bundle.base.name}): analysis and entropy coding")
    grayscale = img.mode in (ColourMode.L, ColourMode.LA)
    enc = bundle.base.encode(img.rgb, quality, fine=fine, effort=effort, grayscale=grayscale, device=dev)
    syntax, steps_field = None, None
    if use_diffusion:
        cgdm = bundle.cgdm
        assert cgdm is not None
        progress("syntax: simulating the decoder's base reconstruction")
        x = rgb_to_tensor(img.rgb)
        x_tilde = bundle.base.reconstruct(enc.streams, img.width, img.height, enc.level, dev)
        from .tuning import search

        steps_field = steps or cgdm.cfg.sampler.steps
        if plan.searches:
            progress(f"searching syntax and seed ({plan.finetune_iters} fine-tuning iterations, "
                     f"{plan.seeds} seed{'s' if plan.seeds > 1 else ''})")
        found = search(cgdm, x, x_tilde, enc.condition, seed, plan, steps_field, device=dev,
                       progress=_steps_to(progress, step_progress), decide=diffusion is None)
        if found.scores:
            progress(f"chose the {found.best.source} syntax with seed {found.best.seed} "
                     f"(scored {len(found.scores)} candidates on the {found.scored_on})")
        seed = found.best.seed
        syntax = cgdm.prior.encode_syntax(found.best.symbols)
        if found.base_only_wins:
            progress("the base-only decode scores better: writing a file without the diffusion stage")
            syntax, steps_field = None, None
    alpha = imageio.encode_alpha(img.alpha) if img.alpha is not None else None
    f = CgdmFile(
        quality=enc.level, width=img.width, height=img.height,
        weights_id=bundle.weights_id(syntax is not None),
        base_streams=enc.streams, colour_mode=img.mode, base_codec=bundle.base.codec_id,
        seed=seed, steps=steps_field, syntax=syntax, alpha=alpha, metadata=img.metadata,
    )
    return serialize(f)


def encode(img, quality: int, device: str = "auto", progress: Progress = _quiet, **options) -> bytes:
    """Compress a Pillow image (or a path) at quality 1..6 into .cgdm bytes."""
    prepared = imageio.load(img) if isinstance(img, (str, Path)) else imageio.from_pil(img)
    return encode_image(prepared, quality, device=device, progress=progress, **options)


def decode_file(f: CgdmFile, *, base_only: bool = False, steps: int | None = None,
                device: str = "auto", progress: Progress = _quiet,
                step_progress: StepProgress | None = None) -> np.ndarray:
    """The decoded RGB image (H, W, 3) uint8 of a parsed container."""
    try:
        name = backend(f.base_codec).name
    except ValueError:
        raise FormatError(f"unknown base codec id {f.base_codec}") from None
    dev = pick_device(device)
    progress("loading weights")
    bundle = load_bundle(name)
    if f.diffusion and bundle.cgdm is None:
        raise WeightsError("this file needs the diffusion weights, which are not installed")
    if f.weights_id != bundle.weights_id(f.diffusion):
        raise WeightsError(
            f"this file needs weights {f.weights_id.hex()}, but the installed weights are "
            f"{bundle.weights_id(f.diffusion).hex()}; decode it with the cgdm version that wrote it")
    progress(f"base codec ({name}): decoding")
    try:
        x_tilde = bundle.base.reconstruct(f.base_streams, f.width, f.height, f.quality, dev)
    except ValueError as e:  # Av1Error and friends: a damaged base stream
        if isinstance(e, FormatError):
            raise
        raise FormatError(f"base-codec stream is corrupted ({e})") from None
    if f.diffusion and not base_only:
        from .sampling.restore import restore

        cgdm = bundle.cgdm
        assert cgdm is not None and f.syntax is not None
        try:
            symbols = cgdm.prior.decode_syntax(f.syntax)
        except Exception as e:  # constriction raises assorted errors on garbage
            raise FormatError(f"syntax section is corrupted ({e})") from None
        report = _steps_to(progress, step_progress)
        condition = bundle.base.condition(f.base_streams, f.quality)
        x_tilde = restore(cgdm, x_tilde, symbols, condition, f.seed, steps or f.steps, device=dev,
                          progress=lambda i, n: report("diffusion steps", i, n), consume_input=True)
    return _to_uint8(x_tilde)


def decode(data: bytes, base_only: bool = False, device: str = "auto",
           progress: Progress = _quiet, steps: int | None = None):
    """Decode .cgdm bytes to a Pillow image (mode RGB, L, RGBA or LA as encoded).

    The file's ICC profile, EXIF and XMP are in ``im.info`` (``icc_profile``, ``exif``,
    ``xmp``), where Pillow's own readers put them; ``imageio.save`` writes them out.
    """
    f = parse(data)
    rgb = decode_file(f, base_only=base_only, steps=steps, device=device, progress=progress)
    alpha = imageio.decode_alpha(f.alpha, f.width, f.height) if f.colour_mode.has_alpha else None
    return imageio.to_pil(rgb, f.colour_mode, alpha, f.metadata)
