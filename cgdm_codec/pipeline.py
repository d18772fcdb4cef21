"""The codec pipeline: image <-> base codec (<-> diffusion post-processor) <-> container bytes.

This is the only module that ties the models to the file format. It asks ``generations``
which networks a file was written for (and which a decode at some realism runs), and
``engines`` what runs them (ONNX Runtime or torch, chosen in ``engines.choose``). Torch
(and numpy) are imported only by the paths that need them: a base-only decode of an AV1
file runs on Pillow alone, an AV1 encode without the diffusion stage on Pillow and numpy,
and the diffusion stage of AV1 files on ONNX Runtime unless torch is asked for or needed
(CUDA, the learned base, ``--effort max``), so all start in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from . import engines
from .engines import Progress, StepProgress
from .base.registry import backend
from .container import TEXTURE_MAP, CgdmFile, ColourMode, FormatError, serialize
from .errors import ConfigError, ImageError, WeightsError
from .generations import Bundle, Decoder, default_base, load_bundle, resolve
from .options import DecodeSettings, EncodeSettings, precision_context

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from . import imageio

    from .sampling.texture import TextureConfig
    from .sampling.texture_map import Preview


def _quiet(_: str) -> None:
    pass


def _steps_to(progress: Progress, step_progress: StepProgress | None) -> StepProgress:
    """Step counts go to ``step_progress`` when given, else become messages."""
    return step_progress or (lambda what, i, n: progress(f"{what} {i}/{n}"))


def encode_image(img: "imageio.CodecImage", settings: EncodeSettings, *, progress: Progress = _quiet,
                 step_progress: StepProgress | None = None) -> bytes:
    """Compress a prepared image into .cgdm bytes at ``settings.level`` (a ``size`` or ``bpp``
    target is ``target.encode_to_size``'s, which calls this for each candidate).

    ``lossless`` codes the exact pixels with the registry's lossless backend (no diffusion
    stage; the level is not used); an image whose numbers were changed on reading (16 bits,
    CMYK...) is refused rather than coded "losslessly" from the changed numbers.

    ``base`` names the base codec (default: ``registry.DEFAULT_BACKEND``); ``av1_quality`` is
    the backend's fine quality (AV1: Pillow's AVIF quality 0..100) instead of the level.
    ``diffusion_stage`` None means: use the diffusion stage when its weights are installed
    and its decode beats the base-only decode on the encoder's objective.
    ``effort`` ("fast", "default", "max") sets how hard the encoder searches for the
    syntax and seed it writes; ``finetune_iters``, ``seeds`` and ``finetune=False``
    override the preset (see ``cgdm_codec.tuning``). ``seed`` is the first seed tried.
    ``runtime`` (``auto``/``onnx``/``torch``) and ``threads`` as for decoding: a single-pass
    encode of an AV1 image runs torch-free; a search (``--effort max``) needs torch.
    ``texture_map`` adds the texture map (``sampling.texture_map``, tens of bytes) that a
    decode at realism > 0 draws its texture from; the fidelity decode never reads it.
    """
    from .tuning.effort import resolve_effort

    base = _lossless_base(settings.base) if settings.lossless else settings.base
    name = backend(base or default_base()).name
    diffusion = settings.diffusion_stage
    if backend(name).lossless:
        diffusion = _exact_only(img, diffusion)
    progress("loading weights")
    bundle = load_bundle(name)
    decoder = None if diffusion is False else bundle.newest  # the one the file will name
    if diffusion and decoder is None:
        raise WeightsError("the diffusion weights are not installed")
    network = backend(name).network
    effort, device, threads = settings.effort, settings.device, settings.threads
    plan = resolve_effort(effort, "cuda" if decoder is not None and device == "cuda" else "cpu",
                          finetune_iters=settings.finetune_iters, seeds=settings.seeds,
                          finetune=settings.finetune)
    search = None if not plan.searches else (
        f"effort {effort!r} (the per-image search)" if effort == "max" else "the syntax search")
    engine = None if decoder is None else engines.pick(settings.runtime, device, decoder.generation, network,
                                                       threads, search)
    progress(f"base codec ({bundle.base.record.name}): analysis and entropy coding")
    grayscale = img.mode in (ColourMode.L, ColourMode.LA)
    enc = bundle.base.encode(img.rgb, settings.level, fine=settings.av1_quality, effort=effort,
                             grayscale=grayscale, device=engines.base_device(engine, device, network),
                             threads=threads)
    syntax, steps_field, seed = None, None, settings.seed
    if decoder is not None and engine is not None:
        steps_field = settings.steps or decoder.sampler["steps"]
        progress("syntax: decoding the base as the decoder will")
        syntax, seed, base_only_wins = engine.find_syntax(
            decoder, bundle.base, img.rgb, enc, seed, steps_field, plan, decide=diffusion is None,
            objective=decoder.generation.objective, progress=progress,
            step_progress=_steps_to(progress, step_progress))
        if base_only_wins:
            progress("the base-only decode scores better: writing a file without the diffusion stage")
            syntax, steps_field = None, None
    from . import imageio

    alpha = imageio.encode_alpha(img.alpha) if img.alpha is not None else None
    f = CgdmFile(
        quality=enc.level, width=img.width, height=img.height,
        weights_id=bundle.weights_id(syntax is not None),
        base_streams=enc.streams, colour_mode=img.mode, base_codec=bundle.base.record.codec_id,
        seed=seed, steps=steps_field, syntax=syntax, alpha=alpha, metadata=img.metadata,
    )
    if settings.texture_map and syntax is not None:
        from .sampling.texture_map import FIT_MAX_PIXELS, make_map

        preview, windows = None, None
        base_rgb = bundle.base.decode_rgb(enc.streams, img.width, img.height)
        if img.width * img.height <= FIT_MAX_PIXELS or effort == "max":  # max: whatever the fit costs
            progress("texture map: the realism decode it is fitted to")
            engines.release()  # the fidelity network's sessions: no fidelity decode follows
            preview = _texture_preview(f, bundle, decoder, settings)
            engines.release()  # the realism network's: the fit runs no network
        elif not backend(bundle.base.record.name).network:
            progress("texture map: realism decodes of windows to fit it to")
            engines.release()
            windows = _texture_window_previews(f, bundle, decoder, settings, base_rgb)
            engines.release()
        progress("texture map")
        record = make_map(img.rgb, base_rgb, preview, windows)
        f = dataclasses.replace(f, extensions=((TEXTURE_MAP, record),))
    return serialize(f)


def _texture_preview(f: CgdmFile, bundle: Bundle, decoder: Decoder, settings: EncodeSettings) -> "Preview | None":
    """The file's realism-1 decode before its texture stage, with what the stage runs with
    (``sampling.texture_map.fitted_symbols`` fits the map to it); None where the file's
    weights have no realism network or it has no texture model (the map is then the
    original's measure alone)."""
    from .sampling.texture_map import Preview

    cfg = _realism_texture(bundle, decoder)[1]
    if cfg is None:
        return None
    rgb = decode_file(f, DecodeSettings(realism=1.0, device=settings.device, threads=settings.threads,
                                        runtime=settings.runtime), texture=False)
    return Preview(rgb, f.seed, cfg, settings.threads)


def _realism_texture(bundle: Bundle, decoder: Decoder) -> "tuple[Decoder | None, TextureConfig | None]":
    """The realism network that decodes the file above realism 0 and its texture model for
    the file's generation; None for what the weights lack."""
    try:
        net, _ = bundle.realism_net(decoder, 1.0)
    except WeightsError:
        return None, None
    return net, net.generation.texture_for(decoder.path.stem)


def _texture_window_previews(f: CgdmFile, bundle: Bundle, decoder: Decoder, settings: EncodeSettings,
                             base_rgb: "np.ndarray") -> "list[tuple[tuple[int, int, int, int], Preview]] | None":
    """Realism-1 decodes, before the texture stage, of the windows the windowed fit reads
    (``sampling.texture_map.fit_windows``), each decoded as a picture of its own from the
    base-only decode's window (its network tiles and noise start at the window's corner:
    the fit reads only their statistics); None as for ``_texture_preview``."""
    import numpy as np

    from .sampling.texture_map import Preview, fit_windows

    net, cfg = _realism_texture(bundle, decoder)
    if cfg is None or f.syntax is None:
        return None
    engine = engines.pick(settings.runtime, settings.device, net.generation, False, settings.threads)
    condition = bundle.base.condition(f.base_streams, f.quality)
    symbols = _syntax(engine, decoder, f.syntax)
    steps = net.sampler["steps"]
    out = []
    for top, left, h, w in fit_windows(f.height, f.width):
        window = np.ascontiguousarray(base_rgb[top:top + h, left:left + w])
        rgb = engine.rgb(engine.restore(net, window, symbols, condition, f.seed, steps, 1.0, lambda done, total: None))
        out.append(((top, left, h, w), Preview(rgb, f.seed, cfg, settings.threads)))
    return out


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


def decode_image(f: CgdmFile, settings: DecodeSettings | None = None, *, progress: Progress = _quiet,
                 step_progress: StepProgress | None = None) -> "Image.Image":
    """The decoded Pillow image of a parsed container: mode RGB, L, RGBA or LA as encoded,
    with the file's metadata unless ``settings.strip``."""
    from . import imageio

    settings = settings or DecodeSettings()
    if not backend(f.base_codec).network and (settings.base_only or not f.diffusion):
        rgb = _weightless_base_only(f, progress)  # no numpy, no torch
    else:
        rgb = imageio.rgb_image(decode_file(f, settings, progress=progress, step_progress=step_progress))
    alpha = imageio.inflate_alpha(f.alpha, f.width, f.height) if f.colour_mode.has_alpha else None
    return imageio.finish(rgb, f.colour_mode, alpha, None if settings.strip else f.metadata)


def decode_file(f: CgdmFile, settings: DecodeSettings | None = None, *, progress: Progress = _quiet,
                step_progress: StepProgress | None = None, texture: bool = True,
                realism_network: bool = True) -> "np.ndarray":
    """The decoded RGB image (H, W, 3) uint8 of a parsed container.

    ``settings.realism`` (0..1) is the decode-time dial of weights trained with a realism
    input (``docs/diffusion.md``); other weights accept only 0. Above 0 the realism network's
    decode gets the texture synthesis of its manifest (``sampling.texture``) at strength
    ``realism``, steered by the file's texture map where it has one (``sampling.texture_map``);
    ``texture=False`` leaves it out (to fit the model, and for ablations);
    ``realism_network=False`` runs the file's own network at any realism, so only the texture
    stage differs from the fidelity decode (an ablation). ``runtime``: see ``engines.choose``;
    ``precision``: ``options.precision_context``.
    """
    settings = settings or DecodeSettings()
    with precision_context(settings.precision):
        return _decode_file(f, settings, progress, step_progress, texture, realism_network)


def _decode_file(f: CgdmFile, settings: DecodeSettings, progress: Progress, step_progress: StepProgress | None,
                 texture: bool, realism_network: bool) -> "np.ndarray":
    base_only, realism, device = settings.base_only, settings.realism, settings.device
    restoring = f.diffusion and not base_only
    progress("loading weights")
    bundle, decoder = resolve(f, restoring)
    name = bundle.base.record.name
    network = backend(name).network
    net = decoder  # the weights that run: the file's, or its realism network above realism 0
    texture_cfg, texture_realism = None, realism
    if restoring and decoder is not None and realism is not None:
        net, realism = bundle.realism_net(decoder, realism)
        texture_cfg = net.generation.texture_for(decoder.path.stem) if texture and realism else None
        texture_realism = realism
        if not realism_network and net is not decoder:
            net, realism = decoder, None
        if settings.fast and net is decoder:  # the fidelity decode by a distilled network, if installed
            net = bundle.fast_companion(decoder) or decoder
    engine = engines.pick(settings.runtime, device, net.generation, network, settings.threads) \
        if restoring and net is not None else None
    dev = engines.base_device(engine, device, network)
    progress(f"base codec ({name}): decoding")
    try:
        if engine is None:
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
    steps = settings.steps or (f.steps if net is decoder else net.sampler["steps"])
    symbols = _syntax(engine, decoder, f.syntax)
    out = engine.restore(net, x_tilde, symbols, condition, f.seed, steps, realism, tiles)
    if texture_cfg is not None:
        _add_texture(engine.canvas(out), texture_cfg, target, f.seed, condition, texture_realism, progress,
                     settings.threads)
    return engine.rgb(out)


def _syntax(engine: engines.Engine, decoder: Decoder, data: bytes) -> Any:
    """The file's syntax symbols, decoded with the prior of the generation it was written for."""
    try:
        return engine.symbols(decoder.generation, data)
    except Exception as e:  # constriction raises assorted errors on garbage
        raise FormatError(f"syntax section is corrupted ({e})") from None


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
                 condition: int, realism: float | None, progress: Progress, threads: int | None = None) -> None:
    """The texture synthesis at ``realism``, in place on a (3, H, W) decode: steered by the
    file's texture map (``target``) where it has one; on ``threads`` threads (``--threads``;
    default the granted cores)."""
    if not realism:
        return
    progress("texture synthesis")
    engines.release()  # the networks are done: their arenas (~0.3 GB at 24 MP) go before the stage's planes
    if target is None:
        from .sampling.texture import add_texture

        add_texture(decode, seed, condition, realism, cfg, workers=threads)
    else:
        from .sampling.texture_map import add_mapped_texture

        add_mapped_texture(decode, seed, realism, cfg, target, workers=threads)


def _weightless_base_only(f: CgdmFile, progress: Progress) -> "Image.Image":
    """A base-only decode by a backend without a network: Pillow alone, no numpy or torch."""
    progress("loading weights")
    bundle, _ = resolve(f, restoring=False)
    progress(f"base codec ({bundle.base.record.name}): decoding")
    try:
        return bundle.base.decode_image(f.base_streams, f.width, f.height)
    except ValueError as e:  # Av1Error: a damaged base stream
        if isinstance(e, FormatError):
            raise
        raise FormatError(f"base-codec stream is corrupted ({e})") from None
