"""The codec pipeline: image <-> base codec (<-> diffusion post-processor) <-> container bytes.

This is the only module that ties the models to the file format. Torch (and numpy) are
imported only by the paths that need them: a base-only decode of an AV1 file runs on
Pillow alone, and an AV1 encode without the diffusion stage on Pillow and numpy, so both
start in a fraction of a second.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from .container import CgdmFile, ColourMode, FormatError, parse, serialize
from .errors import WeightsError
from .base.registry import DEFAULT_BACKEND, backend, create
from .weights import base_weights_path, decoders, verified_manifest, weights_dir, weights_id

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from . import imageio

    from .base.interface import BaseCodec
    from .models.cgdm import Cgdm

Progress = Callable[[str], None]
#: The weights id of a file that needs no network at all (AV1 base, no diffusion stage).
NO_WEIGHTS_ID = bytes(4)
ENV_BASE = "CGDM_BASE"


def _quiet(_: str) -> None:
    pass


class Decoder(NamedTuple):
    """One decoder a file can name: its identity, sampler settings and weights file."""

    identity: str
    sampler: dict
    path: Path


@dataclass
class Bundle:
    """One base codec and the diffusion stage trained on its decodes (when installed).

    ``cgdm`` is loaded only when asked for (it needs torch), set up with the newest decoder
    settings (``weights.decoders``); the decoders' identities are read from the verified
    manifest either way, so a base-only decode still checks a file's weights id.
    """

    base: "BaseCodec"
    cgdm: "Cgdm | None" = None
    decoders: tuple["Decoder", ...] = ()  # every installed weights file's decoders, oldest first

    @property
    def cgdm_identity(self) -> str | None:
        """The identity of the decoder the encoder writes for: the newest."""
        return self.decoders[-1].identity if self.decoders else None

    def weights_id(self, diffusion: bool, identity: str | None = None) -> bytes:
        parts = [self.base.identity()]
        if diffusion:
            identity = identity or self.cgdm_identity
            if identity is None:
                raise WeightsError("the diffusion weights are not installed")
            parts.append(identity)
        parts = [p for p in parts if p]
        return weights_id(*parts) if parts else NO_WEIGHTS_ID

    def decoder_for(self, file_weights_id: bytes) -> "Decoder | None":
        """The installed decoder a diffusion file was written for."""
        for decoder in self.decoders:
            if self.weights_id(True, decoder.identity) == file_weights_id:
                return decoder
        return None

    def sampler_for(self, file_weights_id: bytes) -> dict | None:
        """The sampler settings of the installed decoder a diffusion file was written for."""
        decoder = self.decoder_for(file_weights_id)
        return None if decoder is None else decoder.sampler


def default_base() -> str:
    """The base codec an encode uses unless told: env CGDM_BASE, else the registry's default."""
    return os.environ.get(ENV_BASE) or DEFAULT_BACKEND


def cgdm_weights_paths(base: str = "hyperprior") -> tuple[Path, ...]:
    """The diffusion weights for ``base``, oldest first: every generation the registry names
    that is installed. CGDM_DIFFUSION_WEIGHTS names one file instead ('none': no stage)."""
    override = os.environ.get("CGDM_DIFFUSION_WEIGHTS")
    if override is not None:
        return () if override.lower() in ("", "none") else (Path(override),)
    paths = (weights_dir() / f"{name}.safetensors" for name in backend(base).diffusion_weights)
    return tuple(p for p in paths if p.is_file())


@functools.lru_cache(maxsize=4)
def _load_base(base: str, base_path: Path) -> "BaseCodec":
    return create(base)


@functools.lru_cache(maxsize=4)
def _decoders(cgdm_paths: tuple[Path, ...]) -> tuple[Decoder, ...]:
    """The installed diffusion weights' decoders, after checking each file against its manifest."""
    return tuple(Decoder(identity, sampler, path) for path in cgdm_paths if path.is_file()
                 for identity, sampler in decoders(verified_manifest(path)))


@functools.lru_cache(maxsize=4)
def _load_cgdm(cgdm_path: Path) -> "Cgdm":
    from .models.cgdm import Cgdm

    return Cgdm.from_weights(cgdm_path)


def clear_cache() -> None:
    """Forget the loaded weights (tests swap weight files within one process)."""
    for cached in (_load_base, _decoders, _load_cgdm):
        cached.cache_clear()


def load_bundle(base: str | int = "hyperprior", diffusion: bool = True) -> Bundle:
    """The base codec and, with ``diffusion``, its CGDM; loaded once per process."""
    name = backend(base).name
    bundle = Bundle(_load_base(name, base_weights_path()))
    bundle.decoders = _decoders(cgdm_weights_paths(name))
    if diffusion and bundle.decoders:
        newest = bundle.decoders[-1]
        bundle.cgdm = with_sampler(_load_cgdm(newest.path), newest.sampler)
    return bundle


def with_sampler(cgdm: "Cgdm", sampler: dict) -> "Cgdm":
    """The same networks under other decoder settings (a shallow copy: no tensor is copied)."""
    import copy
    from dataclasses import replace

    from .diffusion_config import SamplerConfig

    view = copy.copy(cgdm)
    view.cfg = replace(cgdm.cfg, sampler=SamplerConfig(**sampler))
    return view


def _device(name: str) -> "torch.device":
    from .device import pick_device

    return pick_device(name)


StepProgress = Callable[[str, int, int], None]


def _steps_to(progress: Progress, step_progress: StepProgress | None) -> StepProgress:
    """Step counts go to ``step_progress`` when given, else become messages."""
    return step_progress or (lambda what, i, n: progress(f"{what} {i}/{n}"))


def encode_image(img: "imageio.CodecImage", quality: int, *, diffusion: bool | None = None,
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
    name = backend(base or default_base()).name
    progress("loading weights")
    bundle = load_bundle(name, diffusion=diffusion is not False)
    use_diffusion = bundle.cgdm is not None if diffusion is None else diffusion
    if use_diffusion and bundle.cgdm is None:
        raise WeightsError("the diffusion weights are not installed")
    dev = _device(device) if use_diffusion or backend(name).network else None
    progress(f"base codec ({bundle.base.name}): analysis and entropy coding")
    grayscale = img.mode in (ColourMode.L, ColourMode.LA)
    enc = bundle.base.encode(img.rgb, quality, fine=fine, effort=effort, grayscale=grayscale, device=dev)
    syntax, steps_field = None, None
    if use_diffusion:
        from .base.interface import rgb_to_tensor
        from .tuning import resolve_effort, search

        cgdm = bundle.cgdm
        assert cgdm is not None and dev is not None
        plan = resolve_effort(effort, dev.type, finetune_iters=finetune_iters, seeds=seeds, finetune=finetune)
        progress("syntax: simulating the decoder's base reconstruction")
        x = rgb_to_tensor(img.rgb)
        x_tilde = bundle.base.reconstruct(enc.streams, img.width, img.height, enc.level, dev)
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
    from . import imageio

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
    from . import imageio

    prepared = imageio.load(img) if isinstance(img, (str, Path)) else imageio.from_pil(img)
    return encode_image(prepared, quality, device=device, progress=progress, **options)


def decode_file(f: CgdmFile, *, base_only: bool = False, steps: int | None = None,
                device: str = "auto", progress: Progress = _quiet,
                step_progress: StepProgress | None = None) -> "np.ndarray":
    """The decoded RGB image (H, W, 3) uint8 of a parsed container."""
    restoring = f.diffusion and not base_only
    if restoring:
        from .base.interface import rgb_to_uint8_tensor, tensor_to_rgb
        from .sampling.restore import restore
    bundle = _checked_bundle(f, restoring, progress)
    name = bundle.base.name
    dev = _device(device) if restoring or backend(name).network else None
    progress(f"base codec ({name}): decoding")
    try:
        if not restoring:
            return bundle.base.decode_rgb(f.base_streams, f.width, f.height, f.quality, dev)
        if backend(name).network:
            x_tilde = bundle.base.reconstruct(f.base_streams, f.width, f.height, f.quality, dev)
        else:  # a weightless base's x~ is its 8-bit decode: it travels as uint8 (a quarter the memory)
            x_tilde = rgb_to_uint8_tensor(bundle.base.decode_rgb(f.base_streams, f.width, f.height, f.quality))
    except ValueError as e:  # Av1Error and friends: a damaged base stream
        if isinstance(e, FormatError):
            raise
        raise FormatError(f"base-codec stream is corrupted ({e})") from None

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
    return tensor_to_rgb(x_tilde)


def decode_image(f: CgdmFile, *, base_only: bool = False, steps: int | None = None,
                 device: str = "auto", progress: Progress = _quiet,
                 step_progress: StepProgress | None = None) -> "Image.Image":
    """The decoded Pillow image of a parsed container: mode RGB, L, RGBA or LA as encoded."""
    from . import imageio

    if not backend(f.base_codec).network and (base_only or not f.diffusion):
        rgb = _weightless_base_only(f, progress)  # no numpy, no torch
    else:
        rgb = imageio.rgb_image(decode_file(f, base_only=base_only, steps=steps, device=device,
                                            progress=progress, step_progress=step_progress))
    alpha = imageio.inflate_alpha(f.alpha, f.width, f.height) if f.colour_mode.has_alpha else None
    return imageio.finish(rgb, f.colour_mode, alpha, f.metadata)


def _checked_bundle(f: CgdmFile, restoring: bool, progress: Progress) -> Bundle:
    """The installed weights, after checking they are the ones the file was written with."""
    progress("loading weights")
    bundle = load_bundle(f.base_codec, diffusion=restoring)
    if f.diffusion and bundle.cgdm_identity is None:
        raise WeightsError("this file needs the diffusion weights, which are not installed")
    decoder = bundle.decoder_for(f.weights_id) if f.diffusion else None
    if f.weights_id != bundle.weights_id(f.diffusion) and decoder is None:
        raise WeightsError(
            f"this file needs weights {f.weights_id.hex()}, but the installed weights are "
            f"{bundle.weights_id(f.diffusion).hex()}; decode it with the cgdm version that wrote it")
    if restoring and decoder is not None:
        # the weights and settings the file was written for (an older generation's, maybe)
        bundle.cgdm = with_sampler(_load_cgdm(decoder.path), decoder.sampler)
    return bundle


def _weightless_base_only(f: CgdmFile, progress: Progress) -> "Image.Image":
    """A base-only decode by a backend without a network: Pillow alone, no numpy or torch."""
    bundle = _checked_bundle(f, False, progress)
    progress(f"base codec ({bundle.base.name}): decoding")
    try:
        return bundle.base.decode_image(f.base_streams, f.width, f.height)
    except ValueError as e:  # Av1Error: a damaged base stream
        if isinstance(e, FormatError):
            raise
        raise FormatError(f"base-codec stream is corrupted ({e})") from None


def decode(data: bytes, base_only: bool = False, device: str = "auto",
           progress: Progress = _quiet, steps: int | None = None) -> "Image.Image":
    """Decode .cgdm bytes to a Pillow image (mode RGB, L, RGBA or LA as encoded).

    The file's ICC profile, EXIF and XMP are in ``im.info`` (``icc_profile``, ``exif``,
    ``xmp``), where Pillow's own readers put them; ``imageio.save`` writes them out.
    """
    return decode_image(parse(data), base_only=base_only, steps=steps, device=device, progress=progress)
