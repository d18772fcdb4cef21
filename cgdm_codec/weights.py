"""Shipped weights: safetensors tensors plus a JSON manifest beside them.

The manifest holds the architecture config, the file's SHA-256, the training data and steps
and measured validation figures. The 4-byte weights identifier written into every .cgdm file
is derived from the SHA-256 of the weight files a decode needs, so a file can only be decoded
with exactly the weights it was encoded with.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

BASE_WEIGHTS = "base-hp1"


def weights_dir() -> Path:
    """The package's ``weights/`` data folder, wherever the package is installed.

    Found through ``importlib.resources`` so that an editable install, a built wheel and a
    ``--target`` install all read the same shipped files; the package is never zipped, so
    the resource is a real folder (the loaders memory-map the files from a path).
    """
    from importlib.resources import files

    return Path(str(files("cgdm_codec") / "weights"))


def base_weights_path() -> Path:
    """The learned base codec's weights (env ``CGDM_BASE_WEIGHTS`` overrides)."""
    import os

    override = os.environ.get("CGDM_BASE_WEIGHTS")
    return Path(override) if override else weights_dir() / f"{BASE_WEIGHTS}.safetensors"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def read_manifest(weights: str | Path) -> dict[str, Any]:
    return json.loads(manifest_path(weights).read_text())


def read_checked_manifest(weights: str | Path) -> dict[str, Any]:
    """The manifest of a weights file, with a one-line error if it is missing or unreadable."""
    from .errors import WeightsError

    path = Path(weights)
    try:
        manifest = read_manifest(path)
        str(manifest["sha256"])
    except FileNotFoundError:
        raise WeightsError(f"the manifest {manifest_path(path)} of {path.name} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"the manifest {manifest_path(path)} is unreadable ({e})") from None
    return manifest


def verified_manifest(weights: str | Path) -> dict[str, Any]:
    """The manifest of a weights file whose bytes match the SHA-256 the manifest records.

    Checked on every load (hashing the shipped files takes a fraction of a second, and
    the loaded bundle is cached per process), so a truncated download, a disk error or
    a swapped file is reported before it can decode a file into garbage.
    """
    from .errors import WeightsError

    path = Path(weights)
    manifest = read_checked_manifest(path)
    expected = str(manifest["sha256"]).lower()
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsError(
            f"{path} is damaged or not the file its manifest describes: sha256 {actual[:16]}..., "
            f"manifest {expected[:16]}...")
    return manifest


#: Manifests of weights exported from now on say ``"id_scheme": 2``: their identity covers the
#: decoder settings in the manifest's config (tile, overlap, noise period, schedule...) as well
#: as the tensors. Manifests without the field (scheme 1) keep the tensor-only identity, so
#: the ids written into existing files keep resolving to the same weights.
ID_SCHEME = 2


def decoder_identity(manifest: dict[str, Any]) -> str:
    """The hex string a weights file contributes to a file's weights id (docs/format.md, 9.1)."""
    if manifest.get("id_scheme", 1) == 1:
        return str(manifest["sha256"]).lower()
    config = json.dumps(manifest["config"], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((str(manifest["sha256"]).lower() + config).encode()).hexdigest()


def weights_id(*sha256_hex: str) -> bytes:
    """4-byte identifier of a set of weight files (in decode order)."""
    return hashlib.sha256("".join(sha256_hex).encode()).digest()[:4]


def save_weights(path: str | Path, tensors: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """Write tensors as safetensors and the manifest (with the file's sha256) next to it."""
    from safetensors.torch import save_file

    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a new file replacing the old one, never the old file rewritten: a process that has the
    # old weights mapped (ONNX Runtime's external data) keeps its pages instead of a SIGBUS
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
    manifest = dict(manifest, file=path.name, sha256=sha256_file(path))
    manifest_path(path).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_tensors(path: str | Path) -> dict[str, Any]:
    """The tensors, read into memory: ``load_file`` would keep the file memory-mapped for the
    whole process, and a file truncated under it (rewritten by a training run, a reinstall)
    kills the process with SIGBUS instead of an error."""
    from safetensors.torch import load

    return load(Path(path).read_bytes())
