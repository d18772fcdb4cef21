"""The installed weights: which networks a file was written for, and which a decode runs.

A *generation* is one shipped diffusion weights file (``cgdm-av1-5``...) with its manifest:
its decoder variants (sampler settings a file can name), its training objective, its
realism companion (the realism network whose manifest lists it under ``realism_for``) and
the texture model that companion keeps for it (``texture_for``), and its loaders (the ONNX
graphs, the syntax prior's table, the torch model). A *bundle* is a base codec with the
generations installed for it. Manifests are read once per process; a weights file's bytes
are hashed against its manifest once, when its networks are first used, so a base-only
decode still checks a file's weights id without reading any weights.

Nothing here runs a network or imports torch unless asked for the torch model.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .base.registry import DEFAULT_BACKEND, backend, create
from .container import CgdmFile
from .errors import MissingDependency, WeightsError
from .weights import (BASE_WEIGHTS, base_weights_path, decoder_identity, read_checked_manifest, verified_manifest,
                      weights_dir, weights_id)

if TYPE_CHECKING:
    import numpy as np

    from .base.interface import BaseCodec
    from .diffusion_config import CgdmConfig, SamplerConfig
    from .models.cgdm import Cgdm
    from .quality.objective import Objective
    from .sampling.texture import TextureConfig

#: The weights id of a file that needs no network at all (AV1 base, no diffusion stage).
NO_WEIGHTS_ID = bytes(4)
ENV_BASE = "CGDM_BASE"


def torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def require_torch(why: str) -> None:
    if not torch_installed():
        raise MissingDependency(f"{why} needs torch, which is not installed: pip install 'cgdm-codec[torch]'")


class Decoder(NamedTuple):
    """One decoder a file can name: its identity, sampler settings and weights file."""

    identity: str
    sampler: dict
    path: Path

    @property
    def generation(self) -> "Generation":
        return generation(self.path)

    @property
    def sampler_config(self) -> "SamplerConfig":
        from .diffusion_config import SamplerConfig

        return SamplerConfig(**self.sampler)


@dataclass(eq=False)
class Generation:
    """One diffusion weights file and its manifest (compared by identity: one per process)."""

    path: Path
    manifest: dict[str, Any]  # read and checked for its fields; its hash is checked by ``verified``
    _verified: bool = field(default=False, repr=False)
    _torch: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.stem

    @functools.cached_property
    def decoders(self) -> tuple[Decoder, ...]:
        """Its decoder variants, oldest first (``decoders``)."""
        return tuple(Decoder(identity, sampler, self.path) for identity, sampler in decoders(self.manifest))

    def verified(self) -> dict[str, Any]:
        """The manifest, once the weights file's bytes were checked against it (once per process)."""
        if not self._verified:
            self.manifest = verified_manifest(self.path)
            self._verified = True
        return self.manifest

    @property
    def config(self) -> "CgdmConfig":
        from .diffusion_config import CgdmConfig

        return CgdmConfig.from_dict(self.verified()["config"])

    @property
    def own_decoder(self) -> Decoder:
        """The decoder of the manifest's own config (what a companion network runs as)."""
        return Decoder("", dict(self.manifest["config"]["sampler"]), self.path)

    @property
    def takes_realism(self) -> bool:
        """Whether the network has a realism input (it then serves its own realism decodes)."""
        return bool(self.manifest["config"].get("unet", {}).get("realism"))

    @property
    def objective(self) -> "Objective":
        """The lambdas it was trained with: what the encoder scores its decodes on."""
        from .quality.objective import Objective

        return Objective.of(self.verified())

    def texture_for(self, name: str) -> "TextureConfig | None":
        """The texture model this realism network keeps for files of generation ``name``:
        its own under ``texture_for`` (a model refitted for newer files leaves older files'
        realism pictures as they were), else the default ``texture``; None without one."""
        model = texture_model(self.verified(), name)
        if model is None:
            return None
        from .sampling.texture import TextureConfig

        return TextureConfig.from_dict(model)

    @property
    def has_graphs(self) -> bool:
        """Whether the manifest lists ONNX graphs and they are installed beside the weights."""
        record = self.manifest.get("onnx") or {}
        return bool(record) and all(self.path.with_name(e["file"]).is_file() for e in record.values())

    def graphs(self) -> dict[str, Path]:
        """role -> ONNX graph, each checked against its recorded sha256."""
        from .runtime import graph_paths

        return graph_paths(self.path, self.verified())

    @functools.cached_property
    def quantised_graphs(self) -> dict[str, Path]:
        """role -> int8 ONNX graph (``runtime.precision_scope``), each checked; empty where
        the weights have none. Looked up when an int8 decode first asks."""
        from .runtime import quantised_paths

        return quantised_paths(self.path, self.verified())

    @functools.cached_property
    def prior_table(self) -> "np.ndarray":
        """The syntax prior's coding tables, read without torch."""
        from .runtime import prior_table

        self.verified()
        return prior_table(self.path)

    def torch_model(self, sampler: dict | None = None) -> "Cgdm":
        """The torch model (loaded once), under ``sampler``'s settings (default: its own)."""
        self.verified()
        if self._torch is None:
            from .models.cgdm import Cgdm

            self._torch = Cgdm.from_weights(self.path)
        return with_sampler(self._torch, sampler or self.manifest["config"]["sampler"])


def decoders(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(identity, sampler settings) of every decoder a weights file serves, oldest first.

    The manifest's own config is the first. Its ``decoder_variants`` (sampler settings
    that override the config's, e.g. a new tile geometry or step count) follow: each is an
    identity of scheme 2 over the config it makes, so files written for it name it in
    their weights id, while the files written before it keep naming (and decoding with)
    the original. The encoder writes the newest; a decoder accepts any of them.
    """
    out = [(decoder_identity(manifest), dict(manifest["config"]["sampler"]))]
    for variant in manifest.get("decoder_variants", []):
        config = dict(manifest["config"], sampler={**manifest["config"]["sampler"], **variant})
        ident = decoder_identity({"sha256": manifest["sha256"], "config": config, "id_scheme": 2})
        out.append((ident, config["sampler"]))
    return out


def texture_model(manifest: dict, name: str) -> dict | None:
    """The texture record a realism network's manifest keeps for files of generation ``name``."""
    return (manifest.get("texture_for") or {}).get(name) or manifest.get("texture")


def with_sampler(cgdm: "Cgdm", sampler: dict) -> "Cgdm":
    """The same networks under other decoder settings (a shallow copy: no tensor is copied)."""
    import copy
    from dataclasses import replace

    from .diffusion_config import SamplerConfig

    view = copy.copy(cgdm)
    view.cfg = replace(cgdm.cfg, sampler=SamplerConfig(**sampler))
    return view


@functools.lru_cache(maxsize=16)
def generation(path: Path) -> Generation:
    """The generation of the weights file at ``path`` (its manifest read once per process)."""
    return Generation(path, read_checked_manifest(path))


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


@dataclass
class Bundle:
    """One base codec and the generations installed for it, oldest first.

    ``cgdm`` is the torch model of the newest decoder, loaded when first asked for.
    """

    base: "BaseCodec"
    generations: tuple[Generation, ...] = ()

    @property
    def decoders(self) -> tuple[Decoder, ...]:
        """Every installed generation's decoders, oldest first."""
        return tuple(d for g in self.generations for d in g.decoders)

    @property
    def newest(self) -> Decoder | None:
        """The decoder the encoder writes for."""
        return self.generations[-1].decoders[-1] if self.generations else None

    @property
    def cgdm(self) -> "Cgdm | None":
        newest = self.newest
        return None if newest is None else newest.generation.torch_model(newest.sampler)

    def weights_id(self, diffusion: bool, identity: str | None = None) -> bytes:
        parts = [self.base.identity()]
        if diffusion:
            identity = identity or (self.newest.identity if self.newest else None)
            if identity is None:
                raise WeightsError("the diffusion weights are not installed")
            parts.append(identity)
        parts = [p for p in parts if p]
        return weights_id(*parts) if parts else NO_WEIGHTS_ID

    def decoder_for(self, file_weights_id: bytes) -> Decoder | None:
        """The installed decoder a diffusion file was written for."""
        for decoder in self.decoders:
            if self.weights_id(True, decoder.identity) == file_weights_id:
                return decoder
        return None

    def sampler_for(self, file_weights_id: bytes) -> dict | None:
        """The sampler settings of the installed decoder a diffusion file was written for."""
        decoder = self.decoder_for(file_weights_id)
        return None if decoder is None else decoder.sampler

    def realism_companion(self, decoder: Decoder) -> Decoder | None:
        """The installed realism network for files of ``decoder``'s generation, if any (its
        weights checked: it is about to run)."""
        return self._companion(decoder, "realism")

    def fast_companion(self, decoder: Decoder) -> Decoder | None:
        """The installed network distilled from ``decoder``'s generation, if any (checked)."""
        return self._companion(decoder, "fast")

    def _companion(self, decoder: Decoder, role: str) -> Decoder | None:
        companion = companion_of(self.base.record.name, decoder.path.stem, role)
        if companion is None:
            return None
        companion.verified()
        return companion.own_decoder

    def realism_net(self, decoder: Decoder, realism: float) -> tuple[Decoder, float | None]:
        """The network a decode at ``realism`` runs, and the realism value it is given.

        0 is the file's own decoder (the fidelity decode, exactly as without the dial). Above
        0 it is the installed realism network of the file's generation, run with the file's
        syntax and seed; a network with a realism input serves its own files.
        """
        if not 0.0 <= realism <= 1.0:
            raise ValueError("realism must be between 0 and 1")
        if decoder.generation.takes_realism:
            return decoder, float(realism)
        if realism == 0:
            return decoder, None
        companion = self.realism_companion(decoder)
        if companion is None:
            raise WeightsError(f"no realism network is installed for this file's diffusion weights "
                               f"({decoder.path.stem}); decode it with --realism 0")
        return companion, float(realism)


@functools.lru_cache(maxsize=4)
def _load_base(base: str, base_path: Path) -> "BaseCodec":
    if backend(base).network:
        require_torch(f"the {base} base codec")
    return create(base)


@functools.lru_cache(maxsize=4)
def _generations(paths: tuple[Path, ...]) -> tuple[Generation, ...]:
    return tuple(generation(p) for p in paths if p.is_file())


def load_bundle(base: str | int = "hyperprior", diffusion: bool = True) -> Bundle:
    """The base codec and its installed generations, once per process. The networks load
    when first used; ``diffusion`` is kept for callers."""
    name = backend(base).name
    return Bundle(_load_base(name, base_weights_path()), _generations(cgdm_weights_paths(name)))


def named_by(f: CgdmFile) -> tuple[str | None, bool]:
    """The installed weights a file names ("none" where it needs none; None where they are
    not installed here) and whether a decode above realism 0 has a network for it. Manifests
    only (no weights file is read or hashed, no base codec built): what ``cgdm info`` says."""
    record = backend(f.base_codec)
    try:
        base = read_checked_manifest(base_weights_path())["sha256"] if record.network else ""
        if not f.diffusion:
            named = weights_id(base) if base else NO_WEIGHTS_ID
            return (BASE_WEIGHTS if base else "none") if f.weights_id == named else None, False
        for path in cgdm_weights_paths(record.name):
            gen = generation(path)
            if any(weights_id(*(p for p in (base, d.identity) if p)) == f.weights_id for d in gen.decoders):
                return gen.name, gen.takes_realism or companion_of(record.name, gen.name) is not None
    except (WeightsError, OSError, KeyError, TypeError):
        pass
    return None, False


def companion_of(base: str, name: str, role: str = "realism") -> Generation | None:
    """The installed companion of ``base`` whose manifest lists generation ``name`` under
    ``ROLE_for`` (manifests only), if any: ``realism`` (the dial's network) or ``fast`` (a
    narrower network distilled from it)."""
    for companion in getattr(backend(base), f"{role}_weights"):
        path = weights_dir() / f"{companion}.safetensors"
        if path.is_file() and name in generation(path).manifest.get(f"{role}_for", ()):
            return generation(path)
    return None


def resolve(f: CgdmFile, restoring: bool = True) -> tuple[Bundle, Decoder | None]:
    """The installed weights, after checking they are the ones the file was written with, and
    the decoder the file names (None for a base-only file). With ``restoring`` the bytes of
    that decoder's weights are checked too."""
    bundle = load_bundle(f.base_codec)
    if f.diffusion and bundle.newest is None:
        raise WeightsError("this file needs the diffusion weights, which are not installed")
    decoder = bundle.decoder_for(f.weights_id) if f.diffusion else None
    if f.weights_id != bundle.weights_id(f.diffusion) and decoder is None:
        raise WeightsError(
            f"this file needs weights {f.weights_id.hex()}, but the installed weights are "
            f"{bundle.weights_id(f.diffusion).hex()}; decode it with the cgdm version that wrote it")
    if restoring and decoder is not None:
        decoder.generation.verified()
    return bundle, decoder


def clear_cache() -> None:
    """Forget the loaded weights (tests swap weight files within one process): every
    generation, and with them their networks and the engines' sessions over them."""
    for cached in (_load_base, _generations, generation):
        cached.cache_clear()
