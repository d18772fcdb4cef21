"""The codec pipeline: image <-> base codec (<-> diffusion post-processor) <-> container bytes.

This is the only module that ties the models to the file format. Torch (and numpy) are
imported only by the paths that need them: a base-only decode of an AV1 file runs on
Pillow alone, an AV1 encode without the diffusion stage on Pillow and numpy, and the
diffusion stage of AV1 files on ONNX Runtime (``runtime.py``) unless torch is asked for
or needed (CUDA, the learned base, ``--effort max``), so all start in a fraction of a second.

Runtimes: ``onnx`` (numpy + ONNX Runtime, float32 on the CPU) and ``torch`` (the U-Net
itself: CUDA, and bfloat16 on CPUs with AMX). ``auto`` takes torch for CUDA and the
learned base, and ONNX Runtime wherever the weights have exported graphs.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from .container import TEXTURE_MAP, CgdmFile, ColourMode, FormatError, parse, serialize
from .errors import ConfigError, ImageError, MissingDependency, WeightsError
from .base.registry import DEFAULT_BACKEND, backend, create
from .quality.objective import Objective
from .weights import base_weights_path, decoders, verified_manifest, weights_dir, weights_id

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from . import imageio

    from .base.interface import BaseCodec
    from .diffusion_config import CgdmConfig, SamplerConfig
    from .models.cgdm import Cgdm
    from .runtime import OrtDenoiser, OrtSyntaxGenerator
    from .sampling.texture import TextureConfig

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


RUNTIMES = ("auto", "onnx", "torch")
ENV_RUNTIME = "CGDM_RUNTIME"


def torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def require_torch(why: str) -> None:
    if not torch_installed():
        raise MissingDependency(f"{why} needs torch, which is not installed: pip install 'cgdm-codec[torch]'")


def _cuda_hint() -> bool:
    """Whether an NVIDIA device node exists: a check that needs no torch import."""
    return os.path.exists("/dev/nvidiactl")


def pick_runtime(requested: str | None, device: str, decoder: "Decoder | None", network_base: bool) -> str:
    """``onnx`` or ``torch`` for the diffusion stage (see the module docstring)."""
    if requested in (None, "auto"):
        requested = os.environ.get(ENV_RUNTIME) or "auto"
    if requested not in RUNTIMES:
        raise ValueError(f"unknown runtime {requested!r} (choose from {', '.join(RUNTIMES)})")
    has_graphs = decoder is not None and _has_graphs(decoder.path)
    if requested == "onnx" and device == "cuda":
        raise ValueError("--runtime onnx runs on the CPU; use --device cpu or auto")
    if requested == "onnx" and network_base:
        raise ValueError("the learned base runs in torch only; use --runtime torch or auto")
    if requested == "onnx" and not has_graphs:
        raise WeightsError("these diffusion weights have no ONNX graphs installed; use --runtime torch")
    if requested == "onnx" or (requested == "auto" and has_graphs and not network_base and device != "cuda"
                                and not (device == "auto" and _cuda_hint() and torch_installed())):
        return "onnx"
    require_torch("this file's decoder" if network_base else "the torch runtime")
    return "torch"


def _has_graphs(path: Path) -> bool:
    """Whether the weights' manifest lists ONNX graphs and they are installed beside it."""
    record = _manifest(path).get("onnx") or {}
    return bool(record) and all(path.with_name(e["file"]).is_file() for e in record.values())


def diffusion_sampler(decoder: Decoder) -> "SamplerConfig":
    from .diffusion_config import SamplerConfig

    return SamplerConfig(**decoder.sampler)


def _config(path: Path) -> "CgdmConfig":
    """The configuration of the weights at ``path`` (from its checked manifest)."""
    from .diffusion_config import CgdmConfig

    return CgdmConfig.from_dict(_manifest(path)["config"])


@functools.lru_cache(maxsize=8)
def _manifest(path: Path) -> dict:
    """A weights file's manifest, once its bytes were checked against it (once per process)."""
    return verified_manifest(path)


@functools.lru_cache(maxsize=8)
def ort_denoiser(path: Path, threads: int | None) -> "OrtDenoiser":
    from .runtime import OrtDenoiser, graph_paths

    return OrtDenoiser(graph_paths(path, _manifest(path)), _config(path).unet, threads)


@functools.lru_cache(maxsize=8)
def ort_syntax(path: Path, threads: int | None) -> "OrtSyntaxGenerator":
    from .runtime import OrtSyntaxGenerator, graph_paths

    graphs = graph_paths(path, _manifest(path))
    return OrtSyntaxGenerator(graphs["syntax"], path, _config(path).syntax, threads)


@functools.lru_cache(maxsize=8)
def prior_table(path: Path) -> "np.ndarray":
    from .runtime import prior_table as read

    _manifest(path)
    return read(path)


@dataclass
class Bundle:
    """One base codec and the diffusion stage trained on its decodes (when installed).

    The decoders' identities come from the manifests alone (no weights file is hashed until
    its decoder runs), so a base-only decode still checks a file's weights id. ``cgdm`` is
    the torch model of the newest decoder, loaded when first asked for (it needs torch).
    """

    base: "BaseCodec"
    decoders: tuple["Decoder", ...] = ()  # every installed weights file's decoders, oldest first

    @property
    def newest(self) -> "Decoder | None":
        return self.decoders[-1] if self.decoders else None

    @property
    def cgdm(self) -> "Cgdm | None":
        return None if self.newest is None else torch_model(self.newest)

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
    if backend(base).network:
        require_torch(f"the {base} base codec")
    return create(base)


@functools.lru_cache(maxsize=4)
def _decoders(cgdm_paths: tuple[Path, ...]) -> tuple[Decoder, ...]:
    """The installed diffusion weights' decoders, from their manifests (hashed when used)."""
    from .weights import read_checked_manifest

    return tuple(Decoder(identity, sampler, path) for path in cgdm_paths if path.is_file()
                 for identity, sampler in decoders(read_checked_manifest(path)))


@functools.lru_cache(maxsize=4)
def _load_cgdm(cgdm_path: Path) -> "Cgdm":
    from .models.cgdm import Cgdm

    return Cgdm.from_weights(cgdm_path)


def torch_model(decoder: Decoder) -> "Cgdm":
    """The torch model of a decoder: its weights under its own sampler settings."""
    _manifest(decoder.path)
    return with_sampler(_load_cgdm(decoder.path), decoder.sampler)


def clear_cache() -> None:
    """Forget the loaded weights (tests swap weight files within one process)."""
    for cached in (_load_base, _decoders, _load_cgdm, _manifest, ort_denoiser, ort_syntax, prior_table):
        cached.cache_clear()


def load_bundle(base: str | int = "hyperprior", diffusion: bool = True) -> Bundle:
    """The base codec and its installed decoders, once per process. The networks load when
    first used (``ort_denoiser``, ``torch_model``); ``diffusion`` is kept for callers."""
    name = backend(base).name
    return Bundle(_load_base(name, base_weights_path()), _decoders(cgdm_weights_paths(name)))


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
                 fine: int | None = None, runtime: str | None = None, threads: int | None = None,
                 lossless: bool = False, texture_map: bool = False) -> bytes:
    """Compress a prepared image at quality 1..6 into .cgdm bytes.

    ``lossless`` codes the exact pixels with the registry's lossless backend (no diffusion
    stage; ``quality`` is not used); an image whose numbers were changed on reading (16 bits,
    CMYK...) is refused rather than coded "losslessly" from the changed numbers.

    ``base`` names the base codec (default: ``registry.DEFAULT_BACKEND``); ``fine`` is a
    backend-specific fine quality (AV1: Pillow's AVIF quality 0..100) instead of the level.
    ``diffusion`` None means: use the diffusion stage when its weights are installed and
    its decode beats the base-only decode on the encoder's objective.
    ``effort`` ("fast", "default", "max") sets how hard the encoder searches for the
    syntax and seed it writes; ``finetune_iters``, ``seeds`` and ``finetune=False``
    override the preset (see ``cgdm_codec.tuning``). ``seed`` is the first seed tried.
    ``runtime`` (``auto``/``onnx``/``torch``) and ``threads`` as for decoding: a single-pass
    encode of an AV1 image runs torch-free; a search (``--effort max``) needs torch.
    ``texture_map`` adds the texture map (``sampling.texture_map``, tens of bytes) that a
    decode at realism > 0 draws its texture from; the fidelity decode never reads it.
    """
    from .tuning.effort import resolve_effort

    if not 1 <= quality <= 6:
        raise ValueError("quality must be 1..6")
    if lossless:
        base = _lossless_base(base)
    name = backend(base or default_base()).name
    if backend(name).lossless:
        diffusion = _exact_only(img, diffusion)
    progress("loading weights")
    bundle = load_bundle(name)
    decoder = bundle.newest
    use_diffusion = decoder is not None if diffusion is None else diffusion
    if use_diffusion and decoder is None:
        raise WeightsError("the diffusion weights are not installed")
    network = backend(name).network
    engine = pick_runtime(runtime, device, decoder, network) if use_diffusion else None
    plan = resolve_effort(effort, "cuda" if engine == "torch" and device == "cuda" else "cpu",
                          finetune_iters=finetune_iters, seeds=seeds, finetune=finetune)
    if engine == "onnx" and plan.searches:
        require_torch(f"effort {effort!r} (the per-image search)" if effort == "max" else "the syntax search")
        engine = "torch"
    dev = _device(device) if engine == "torch" or network else None
    progress(f"base codec ({bundle.base.record.name}): analysis and entropy coding")
    grayscale = img.mode in (ColourMode.L, ColourMode.LA)
    enc = bundle.base.encode(img.rgb, quality, fine=fine, effort=effort, grayscale=grayscale, device=dev,
                             threads=threads)
    syntax, steps_field = None, None
    if use_diffusion:
        assert decoder is not None
        steps_field = steps or decoder.sampler["steps"]
        progress("syntax: decoding the base as the decoder will")
        objective = Objective.of(_manifest(decoder.path))  # the lambdas it was trained with
        if engine == "onnx":
            from .tuning.light import single_pass

            x_tilde = bundle.base.decode_rgb(enc.streams, img.width, img.height)
            found = single_pass(ort_syntax(decoder.path, threads), ort_denoiser(decoder.path, threads),
                                prior_table(decoder.path), diffusion_sampler(decoder), img.rgb, x_tilde,
                                enc.condition, seed, steps_field, plan, decide=diffusion is None,
                                progress=progress,
                                steps_done=lambda i, n: _steps_to(progress, step_progress)("scoring steps", i, n),
                                objective=objective)
            syntax, base_only_wins = found.syntax, found.base_only_wins
        else:
            syntax, seed, base_only_wins = _torch_search(bundle, decoder, img, enc, seed, steps_field, plan, dev,
                                                         diffusion is None, progress, step_progress, objective)
        if base_only_wins:
            progress("the base-only decode scores better: writing a file without the diffusion stage")
            syntax, steps_field = None, None
    from . import imageio

    alpha = imageio.encode_alpha(img.alpha) if img.alpha is not None else None
    extensions = {}
    if texture_map and syntax is not None:
        from .sampling.texture_map import make_map

        progress("texture map")
        extensions[TEXTURE_MAP] = make_map(img.rgb, bundle.base.decode_rgb(enc.streams, img.width, img.height))
    f = CgdmFile(
        quality=enc.level, width=img.width, height=img.height,
        weights_id=bundle.weights_id(syntax is not None),
        base_streams=enc.streams, colour_mode=img.mode, base_codec=bundle.base.record.codec_id,
        seed=seed, steps=steps_field, syntax=syntax, alpha=alpha, metadata=img.metadata,
        extensions=extensions,
    )
    return serialize(f)


def _lossless_base(base: str | None) -> str:
    """The base of a lossless encode: the registry's lossless one (another is a contradiction)."""
    from .base.registry import lossless_backend

    name = lossless_backend()
    if base is not None and backend(base).name != name:
        raise ConfigError(f"lossless coding has its own base codec ({name}), not {base}")
    return name


def _exact_only(img: "imageio.CodecImage", diffusion: bool | None) -> bool:
    """A lossless base's encode has no diffusion stage (False), and refuses an image whose
    numbers changed on reading: coding those exactly would not be lossless."""
    if diffusion:
        raise ConfigError("a lossless file has no diffusion stage")
    if img.inexact is not None:
        raise ImageError(f"cannot be coded losslessly: {img.inexact}")
    return False


def _torch_search(bundle: Bundle, decoder: Decoder, img: "imageio.CodecImage", enc, seed: int, steps: int,
                  plan, dev, decide: bool, progress: Progress,
                  step_progress: StepProgress | None, objective: Objective) -> tuple[bytes, int, bool]:
    """The torch encoder: one pass or a search (``tuning.search``); (syntax bytes, seed, base-only wins)."""
    from .base.interface import rgb_to_tensor
    from .tuning.search import search

    cgdm = torch_model(decoder)
    x = rgb_to_tensor(img.rgb)
    x_tilde = bundle.base.reconstruct(enc.streams, img.width, img.height, enc.level, dev)
    if plan.searches:
        progress(f"searching syntax and seed ({plan.finetune_iters} fine-tuning iterations, "
                 f"{plan.seeds} seed{'s' if plan.seeds > 1 else ''})")
    found = search(cgdm, x, x_tilde, enc.condition, seed, plan, steps, device=dev,
                   progress=_steps_to(progress, step_progress), decide=decide, objective=objective)
    if found.scores:
        progress(f"chose the {found.best.source} syntax with seed {found.best.seed} "
                 f"(scored {len(found.scores)} candidates on the {found.scored_on})")
    return cgdm.prior.encode_syntax(found.best.symbols), found.best.seed, found.base_only_wins


def encode(img, quality: int, device: str = "auto", progress: Progress = _quiet, **options) -> bytes:
    """Compress a Pillow image (or a path) at quality 1..6 into .cgdm bytes."""
    from . import imageio

    prepared = imageio.load(img) if isinstance(img, (str, Path)) else imageio.from_pil(img)
    return encode_image(prepared, quality, device=device, progress=progress, **options)


def decode_file(f: CgdmFile, *, base_only: bool = False, steps: int | None = None,
                device: str = "auto", progress: Progress = _quiet,
                step_progress: StepProgress | None = None, realism: float | None = None,
                runtime: str | None = None, threads: int | None = None, texture: bool = True,
                realism_network: bool = True) -> "np.ndarray":
    """The decoded RGB image (H, W, 3) uint8 of a parsed container.

    ``realism`` (0..1) is the decode-time dial of weights trained with a realism input
    (``docs/diffusion.md``); other weights accept only 0. Above 0 the realism network's
    decode gets the texture synthesis of its manifest (``sampling.texture``) at strength
    ``realism``, steered by the file's texture map where it has one (``sampling.texture_map``);
    ``texture=False`` leaves it out (to fit the model, and for ablations);
    ``realism_network=False`` runs the file's own network at any realism, so only the texture
    stage differs from the fidelity decode (an ablation). ``runtime``: see ``pick_runtime``.
    """
    restoring = f.diffusion and not base_only
    bundle, decoder = _checked_bundle(f, restoring, progress)
    name = bundle.base.record.name
    network = backend(name).network
    net = decoder  # the weights that run: the file's, or its realism network above realism 0
    texture_cfg, texture_realism = None, realism
    if restoring and realism is not None:
        net, realism = _realism(bundle, decoder, realism)
        texture_cfg = _texture_config(net, decoder) if texture and realism else None
        texture_realism = realism
        if not realism_network and net is not decoder:
            net, realism = decoder, None
    engine = pick_runtime(runtime, device, net, network) if restoring else None
    dev = _device(device) if engine == "torch" or network else None
    progress(f"base codec ({name}): decoding")
    try:
        if not restoring:
            return bundle.base.decode_rgb(f.base_streams, f.width, f.height, f.quality, dev)
        if network:
            x_tilde = bundle.base.reconstruct(f.base_streams, f.width, f.height, f.quality, dev)
        else:  # a weightless base's x~ is its 8-bit decode: it travels as uint8 (a quarter the memory)
            x_tilde = bundle.base.decode_rgb(f.base_streams, f.width, f.height, f.quality)
        target = _texture_targets(f, bundle, x_tilde if not network else None) if texture_cfg else None
    except ValueError as e:  # Av1Error and friends: a damaged base stream
        if isinstance(e, FormatError):
            raise
        raise FormatError(f"base-codec stream is corrupted ({e})") from None
    assert decoder is not None and net is not None and f.syntax is not None
    report = _steps_to(progress, step_progress)

    def tiles(done: int, total: int) -> None:
        """The stage's tiles (x steps) done: what a long decode can show, with an ETA."""
        report("diffusion tiles", done, total)

    condition = bundle.base.condition(f.base_streams, f.quality)
    steps = steps or (f.steps if net is decoder else net.sampler["steps"])
    if engine == "onnx":
        import numpy as np

        from .entropy_models.syntax_coding import decode_symbols
        from .sampling.restore import decode_canvas

        symbols = _syntax(lambda: decode_symbols(prior_table(decoder.path), f.syntax))
        out = decode_canvas(ort_denoiser(net.path, threads), x_tilde.transpose(2, 0, 1)[None], symbols,
                            condition, f.seed, steps, diffusion_sampler(net), realism=realism,
                            tile_progress=tiles)
        if texture_cfg is not None:
            _add_texture(out[0], texture_cfg, target, f.seed, condition, texture_realism, progress)
        out = out[0].transpose(1, 2, 0)
        out *= 255.0
        return np.ascontiguousarray(np.rint(out, out=out).astype(np.uint8))
    from .base.interface import rgb_to_uint8_tensor, tensor_to_rgb
    from .sampling.restore import restore

    symbols = _syntax(lambda: torch_model(decoder).prior.decode_syntax(f.syntax))
    if not network:
        x_tilde = rgb_to_uint8_tensor(x_tilde)
    x_tilde = restore(torch_model(net), x_tilde, symbols, condition, f.seed, steps, device=dev, realism=realism,
                      tile_progress=tiles, consume_input=True)
    if texture_cfg is not None:
        _add_texture(x_tilde.numpy()[0], texture_cfg, target, f.seed, condition, texture_realism, progress)
    return tensor_to_rgb(x_tilde)


def texture_model(manifest: dict, generation: str) -> dict | None:
    """The texture model a realism network's manifest keeps for files of ``generation``: its
    own under ``texture_for`` (a model refitted for newer files leaves older files' realism
    pictures as they were), else the default ``texture``."""
    return (manifest.get("texture_for") or {}).get(generation) or manifest.get("texture")


def _texture_config(net: Decoder, decoder: Decoder) -> "TextureConfig | None":
    """The texture model the realism network ``net`` keeps for files of ``decoder``'s
    generation (None without one)."""
    model = texture_model(_manifest(net.path), decoder.path.stem)
    if model is None:
        return None
    from .sampling.texture import TextureConfig

    return TextureConfig.from_dict(model)


def _texture_targets(f: CgdmFile, bundle: Bundle, base_rgb: "np.ndarray | None") -> "np.ndarray | None":
    """The block energies the file's texture map asks for (None without a map): read against
    the base-only decode, which a weightless base's x~ already is."""
    record = f.extension(TEXTURE_MAP)
    if record is None:
        return None
    from .sampling.texture_map import read_map

    if base_rgb is None:
        base_rgb = bundle.base.decode_rgb(f.base_streams, f.width, f.height, f.quality)
    return read_map(record, base_rgb)


def _add_texture(decode: "np.ndarray", cfg: "TextureConfig", target: "np.ndarray | None", seed: int,
                 condition: int, realism: float | None, progress: Progress) -> None:
    """The texture synthesis at ``realism``, in place on a (3, H, W) decode: steered by the
    file's texture map (``target``) where it has one."""
    if not realism:
        return
    progress("texture synthesis")
    if target is None:
        from .sampling.texture import add_texture

        add_texture(decode, seed, condition, realism, cfg)
    else:
        from .sampling.texture_map import add_mapped_texture

        add_mapped_texture(decode, seed, condition, realism, cfg, target)


def _syntax(read: Callable[[], object]):
    try:
        return read()
    except Exception as e:  # constriction raises assorted errors on garbage
        raise FormatError(f"syntax section is corrupted ({e})") from None


def _realism(bundle: Bundle, decoder: Decoder, realism: float) -> tuple[Decoder, float | None]:
    """The network a decode at ``realism`` runs, and the realism value it is given.

    0 is the file's own decoder (the fidelity decode, exactly as without the dial). Above 0
    it is the installed realism network of the file's generation (``BaseRecord.realism_weights``,
    whose manifest's ``realism_for`` names it), run with the file's syntax and seed.
    """
    if not 0.0 <= realism <= 1.0:
        raise ValueError("realism must be between 0 and 1")
    if _config(decoder.path).unet.realism:
        return decoder, float(realism)
    if realism == 0:
        return decoder, None
    companion = realism_decoder(bundle, decoder)
    if companion is None:
        raise WeightsError(f"no realism network is installed for this file's diffusion weights "
                           f"({decoder.path.stem}); decode it with --realism 0")
    return companion, float(realism)


def realism_decoder(bundle: Bundle, decoder: Decoder) -> "Decoder | None":
    """The installed realism network for files of ``decoder``'s weights, if any."""
    from .weights import read_checked_manifest

    for name in backend(bundle.base.record.name).realism_weights:
        path = weights_dir() / f"{name}.safetensors"
        if path.is_file():
            manifest = read_checked_manifest(path)
            if decoder.path.stem in manifest.get("realism_for", ()):
                _manifest(path)
                return Decoder("", dict(manifest["config"]["sampler"]), path)
    return None


def decode_image(f: CgdmFile, *, base_only: bool = False, steps: int | None = None,
                 device: str = "auto", progress: Progress = _quiet,
                 step_progress: StepProgress | None = None, realism: float | None = None,
                 runtime: str | None = None, threads: int | None = None) -> "Image.Image":
    """The decoded Pillow image of a parsed container: mode RGB, L, RGBA or LA as encoded."""
    from . import imageio

    if not backend(f.base_codec).network and (base_only or not f.diffusion):
        rgb = _weightless_base_only(f, progress)  # no numpy, no torch
    else:
        rgb = imageio.rgb_image(decode_file(f, base_only=base_only, steps=steps, device=device,
                                            progress=progress, step_progress=step_progress,
                                            realism=realism, runtime=runtime, threads=threads))
    alpha = imageio.inflate_alpha(f.alpha, f.width, f.height) if f.colour_mode.has_alpha else None
    return imageio.finish(rgb, f.colour_mode, alpha, f.metadata)


def _checked_bundle(f: CgdmFile, restoring: bool, progress: Progress) -> tuple[Bundle, "Decoder | None"]:
    """The installed weights, after checking they are the ones the file was written with, and
    the decoder the file names (None for a base-only file)."""
    progress("loading weights")
    bundle = load_bundle(f.base_codec)
    if f.diffusion and bundle.newest is None:
        raise WeightsError("this file needs the diffusion weights, which are not installed")
    decoder = bundle.decoder_for(f.weights_id) if f.diffusion else None
    if f.weights_id != bundle.weights_id(f.diffusion) and decoder is None:
        raise WeightsError(
            f"this file needs weights {f.weights_id.hex()}, but the installed weights are "
            f"{bundle.weights_id(f.diffusion).hex()}; decode it with the cgdm version that wrote it")
    if restoring and decoder is not None:
        _manifest(decoder.path)  # the bytes of the weights it runs are checked
    return bundle, decoder


def _weightless_base_only(f: CgdmFile, progress: Progress) -> "Image.Image":
    """A base-only decode by a backend without a network: Pillow alone, no numpy or torch."""
    bundle, _ = _checked_bundle(f, False, progress)
    progress(f"base codec ({bundle.base.record.name}): decoding")
    try:
        return bundle.base.decode_image(f.base_streams, f.width, f.height)
    except ValueError as e:  # Av1Error: a damaged base stream
        if isinstance(e, FormatError):
            raise
        raise FormatError(f"base-codec stream is corrupted ({e})") from None


def decode(data: bytes, base_only: bool = False, device: str = "auto",
           progress: Progress = _quiet, steps: int | None = None, realism: float | None = None) -> "Image.Image":
    """Decode .cgdm bytes to a Pillow image (mode RGB, L, RGBA or LA as encoded).

    The file's ICC profile, EXIF and XMP are in ``im.info`` (``icc_profile``, ``exif``,
    ``xmp``), where Pillow's own readers put them; ``imageio.save`` writes them out.
    """
    return decode_image(parse(data), base_only=base_only, steps=steps, device=device, progress=progress,
                        realism=realism)
