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
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

# CompressAI still decorates helpers with torch.jit.script, which newer torch warns about.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

from . import imageio  # noqa: E402
from .config import BaseCodecConfig  # noqa: E402
from .container import CgdmFile, ColourMode, FormatError  # noqa: E402
from .device import autocast_for, pick_device  # noqa: E402
from .errors import WeightsError  # noqa: E402
from .models.base_codec import BaseStreams, VariableRateHyperprior  # noqa: E402
from .weights import BASE_WEIGHTS, load_tensors, read_manifest, weights_dir, weights_id  # noqa: E402

BASE_CODEC_ID = 1
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class BaseBackend:
    model: VariableRateHyperprior
    sha256: str

    @property
    def weights_id(self) -> bytes:
        return weights_id(self.sha256)


def _resize_coder_buffers(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """CDF tables vary in size; shape the empty buffers like the stored ones before loading."""
    for name, module in model.named_modules():
        for buf in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"):
            key = f"{name}.{buf}" if name else buf
            if key in state and hasattr(module, buf):
                getattr(module, buf).resize_(state[key].shape)


def load_base_model(path: str | Path) -> tuple[VariableRateHyperprior, dict]:
    manifest = read_manifest(path)
    model = VariableRateHyperprior(BaseCodecConfig.from_dict(manifest["config"]))
    state = load_tensors(path)
    _resize_coder_buffers(model, state)
    model.load_state_dict(state, strict=True)
    return model.eval(), manifest


def base_weights_path() -> Path:
    override = os.environ.get("CGDM_BASE_WEIGHTS")
    return Path(override) if override else weights_dir() / f"{BASE_WEIGHTS}.safetensors"


@functools.lru_cache(maxsize=2)
def load_base(path: str | None = None) -> BaseBackend:
    p = Path(path) if path else base_weights_path()
    if not p.is_file():
        raise WeightsError(f"base-codec weights not found at {p}")
    model, manifest = load_base_model(p)
    return BaseBackend(model, manifest["sha256"])


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy())


def encode_image(img: imageio.CodecImage, quality: int, *, device: str = "auto",
                 progress: Progress = _quiet) -> bytes:
    """Compress a prepared image at quality 1..6 into .cgdm bytes."""
    if not 1 <= quality <= 6:
        raise ValueError("quality must be 1..6")
    dev = pick_device(device)
    progress("loading weights")
    backend = load_base()
    model = backend.model.to(dev)
    progress("base codec: analysis and entropy coding")
    x = _pad_to(_to_tensor(img.rgb), model.MULTIPLE).to(dev)
    with torch.no_grad(), autocast_for(dev):
        streams = model.compress(x.contiguous(memory_format=torch.channels_last), quality - 1)
    alpha = imageio.encode_alpha(img.alpha) if img.alpha is not None else None
    f = CgdmFile(
        quality=quality, width=img.width, height=img.height, weights_id=backend.weights_id,
        base_streams=(streams.z, streams.y), colour_mode=img.mode, base_codec=BASE_CODEC_ID,
        seed=0, alpha=alpha,
    )
    from .container import serialize

    return serialize(f)


def encode(img, quality: int, device: str = "auto", progress: Progress = _quiet) -> bytes:
    """Compress a Pillow image (or a path) at quality 1..6 into .cgdm bytes."""
    prepared = imageio.load(img) if isinstance(img, (str, Path)) else imageio.from_pil(img)
    return encode_image(prepared, quality, device=device, progress=progress)


def _latent_shape(width: int, height: int, multiple: int) -> tuple[int, int]:
    return (-(-height // multiple), -(-width // multiple))


def decode_file(f: CgdmFile, *, base_only: bool = False, device: str = "auto",
                progress: Progress = _quiet) -> np.ndarray:
    """The decoded RGB image (H, W, 3) uint8 of a parsed container."""
    if f.base_codec != BASE_CODEC_ID:
        raise FormatError(f"unknown base codec id {f.base_codec}")
    dev = pick_device(device)
    progress("loading weights")
    backend = load_base()
    if f.weights_id != backend.weights_id:
        raise WeightsError(
            f"this file needs weights {f.weights_id.hex()}, but the installed weights are "
            f"{backend.weights_id.hex()}; decode it with the cgdm version that wrote it")
    model = backend.model
    progress("base codec: entropy decoding")
    streams = BaseStreams(z=f.base_streams[0], y=f.base_streams[1],
                          latent_shape=_latent_shape(f.width, f.height, model.MULTIPLE))
    try:
        y_hat = model.decompress_latent(streams, f.quality - 1)
    except (RuntimeError, ValueError, IndexError) as e:
        raise FormatError(f"base-codec stream is corrupted ({e})") from None
    progress("base codec: synthesis")
    model = model.to(dev)
    with torch.no_grad(), autocast_for(dev):
        x_tilde = model.synthesis(y_hat.to(dev).contiguous(memory_format=torch.channels_last))
    x_tilde = x_tilde[..., : f.height, : f.width].float().cpu()
    return _to_uint8(x_tilde)


def decode(data: bytes, base_only: bool = False, device: str = "auto",
           progress: Progress = _quiet):
    """Decode .cgdm bytes to a Pillow image (mode RGB, L, RGBA or LA as encoded)."""
    from .container import parse

    f = parse(data)
    rgb = decode_file(f, base_only=base_only, device=device, progress=progress)
    alpha = imageio.decode_alpha(f.alpha, f.width, f.height) if f.colour_mode.has_alpha else None
    return imageio.to_pil(rgb, f.colour_mode, alpha)
