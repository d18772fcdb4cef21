"""``cgdm web DIR``: the browser viewer of ``.cgdm`` files as a self-contained static folder.

The page and its decoder are classic scripts (Chromium runs no module script from a
file:// page), shipped as package data in ``cgdm_codec/web`` (``docs/web.md``). This module
copies them and writes the files the page builds on its own data:

* ``weights.js``: the names of the weights installed here by their 4-byte id (so the
  page's info table names them as ``cgdm info`` does), and which weights script serves
  which id;
* ``ort-wasm-glue.js`` and ``ort-wasm-binary.js``: ONNX Runtime Web's module and its
  gzipped WebAssembly binary (``web/vendor``) as script-held strings, since a page opened
  from disk can fetch nothing;
* ``weights-NAME.js`` per AV1 weights generation written (the newest by default, every
  installed one with ``all_weights``): the condition, features and denoise graphs, the
  tensors they read from the ``.safetensors`` file (all but the encoder's syntax
  generator's), the syntax prior's integer tables, the sampler settings and the DDIM
  schedule, gzipped and base64-encoded.

The page fetches nothing outside its folder and works from ``file://``.
"""

from __future__ import annotations

import base64
import gzip
import json
import struct
from importlib import resources
from pathlib import Path
from typing import Any

from .atomic import OutputExistsError

#: The files the page is made of, in the package's ``web`` folder.
PAGE_FILES = ("index.html", "app.js", "cgdm.js", "diffusion.js", "style.css")
WEIGHTS_JS = "weights.js"
#: ONNX Runtime Web: the script copied as it is, and the two the page gets as strings.
RUNTIME_SCRIPT = "ort.wasm.min.js"
RUNTIME_GLUE = "ort-wasm-glue.js"
RUNTIME_BINARY = "ort-wasm-binary.js"
RUNTIME_FILES = (RUNTIME_SCRIPT, RUNTIME_GLUE, RUNTIME_BINARY)
#: Tensors of a weights file that no graph the decoder runs reads (the encoder's syntax generator).
ENCODER_ONLY_PREFIXES = ("syntax.",)
GRAPH_ROLES = ("condition", "features", "denoise")


def weights_names() -> dict[str, str]:
    """Weights id (hex) -> name, for the AV1 weights installed here and "none".

    Manifests only, as ``cgdm info`` reads them: no weights file is loaded. A missing or
    unreadable manifest leaves its name out (the page then shows the id alone).
    """
    from .errors import WeightsError
    from .generations import NO_WEIGHTS_ID, cgdm_weights_paths, decoders
    from .weights import read_checked_manifest, weights_id

    names = {NO_WEIGHTS_ID.hex(): "none"}
    for path in cgdm_weights_paths("av1"):
        try:
            for identity, _ in decoders(read_checked_manifest(path)):
                names[weights_id(identity).hex()] = path.stem
        except (WeightsError, OSError, KeyError, TypeError):
            continue
    return names


def weights_module(names: dict[str, str], scripts: dict[str, str] | None = None) -> str:
    """The ``weights.js`` script the page loads: names by id, and the weights scripts by id."""
    return ("// Written by `cgdm web`: the names of the weights installed with that cgdm, by id,\n"
            "// and the script of this folder that holds each one's graphs (the full decode).\n"
            f"globalThis.CGDM_WEIGHTS = {json.dumps(names, indent=1, sort_keys=True)};\n"
            f"globalThis.CGDM_MODEL_SCRIPTS = {json.dumps(scripts or {}, indent=1, sort_keys=True)};\n")


def page_source(name: str) -> bytes:
    """One shipped file of the page."""
    return resources.files("cgdm_codec").joinpath("web", name).read_bytes()


def _b64gz(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data, 9, mtime=0)).decode("ascii")


def runtime_scripts() -> dict[str, bytes]:
    """ONNX Runtime Web's three scripts for the page (``web/vendor``)."""
    vendor = resources.files("cgdm_codec").joinpath("web", "vendor")
    glue = vendor.joinpath("ort-wasm-simd-threaded.mjs").read_text(encoding="utf-8")
    wasm_gz = vendor.joinpath("ort-wasm-simd-threaded.wasm.gz").read_bytes()
    return {
        RUNTIME_SCRIPT: vendor.joinpath(RUNTIME_SCRIPT).read_bytes(),
        RUNTIME_GLUE: ("// Written by `cgdm web`: ONNX Runtime Web's module ort-wasm-simd-threaded.mjs\n"
                       "// (onnxruntime-web, MIT License, Copyright (c) Microsoft Corporation), as a string\n"
                       f"globalThis.CGDM_ORT_GLUE = {json.dumps(glue)};\n").encode(),
        RUNTIME_BINARY: ("// Written by `cgdm web`: ONNX Runtime Web's ort-wasm-simd-threaded.wasm, gzip, base64\n"
                         "// (onnxruntime-web, MIT License, Copyright (c) Microsoft Corporation)\n"
                         f'globalThis.CGDM_ORT_WASM = "{base64.b64encode(wasm_gz).decode("ascii")}";\n').encode(),
    }


def _tensor_ranges(weights: Path) -> tuple[list[list[int]], int]:
    """[file offset, length] of every tensor the decoder's graphs may read, and the file's size."""
    data = weights.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    start = 8 + header_len
    ranges = []
    for name, entry in header.items():
        if name == "__metadata__" or name.startswith(ENCODER_ONLY_PREFIXES):
            continue
        a, b = entry["data_offsets"]
        ranges.append([start + a, b - a])
    ranges.sort()
    return ranges, len(data)


def model_script(weights: Path) -> tuple[str, list[str]]:
    """``weights-NAME.js`` for one AV1 weights file, and the weights ids (hex) it decodes."""
    import numpy as np

    from .diffusion_config import CgdmConfig, SamplerConfig
    from .runtime import graph_paths, prior_table
    from .sampling.ddim import DDIMScheduler
    from .generations import decoders
    from .weights import verified_manifest, weights_id

    manifest = verified_manifest(weights)
    config = CgdmConfig.from_dict(manifest["config"])
    graphs = graph_paths(weights, manifest)
    ranges, size = _tensor_ranges(weights)
    data = weights.read_bytes()
    packed = b"".join(data[offset:offset + length] for offset, length in ranges)
    table = np.asarray(prior_table(weights), dtype=np.int64)
    samplers, schedules, ids = {}, {}, []
    for identity, sampler in decoders(manifest):
        key = weights_id(identity).hex()
        ids.append(key)
        cfg = SamplerConfig(**sampler)
        samplers[key] = {"tile": cfg.tile, "overlap": cfg.overlap, "tiling": cfg.tiling,
                         "noise_period": cfg.noise_period, "train_timesteps": cfg.train_timesteps,
                         "steps": cfg.steps}
        schedules[key] = DDIMScheduler.from_config(cfg).alphas_cumprod.tolist()  # float64, exact in JSON
    record: dict[str, Any] = {
        "name": weights.stem,
        "multiple": config.multiple,
        "realism": bool(config.unet.realism),
        "samplers": samplers,
        "alphas_cumprod": schedules,
        "prior": {"rows": int(table.shape[0]), "cols": int(table.shape[1]), "table": table.reshape(-1).tolist()},
        "graphs": {role: _b64gz(graphs[role].read_bytes()) for role in GRAPH_ROLES},
        "external": {"path": weights.name, "size": size, "ranges": ranges, "data": _b64gz(packed)},
    }
    text = ("// Written by `cgdm web`: the diffusion stage of the weights " + weights.stem + " (graphs, tensors,\n"
            "// syntax tables, sampler), gzip and base64, for the page's full decode.\n"
            "globalThis.CGDM_MODELS = globalThis.CGDM_MODELS || {};\n"
            f"globalThis.CGDM_MODELS[{json.dumps(weights.stem)}] = {json.dumps(record, separators=(',', ':'))};\n")
    return text, ids


def av1_weights(all_weights: bool = False) -> list[Path]:
    """The AV1 weights whose full decode the page gets: the newest installed, or all of them."""
    from .generations import cgdm_weights_paths

    paths = list(cgdm_weights_paths("av1"))
    return paths if all_weights else paths[-1:]


def write_page(folder: Path, force: bool = False, all_weights: bool = False) -> list[Path]:
    """Write the viewer into ``folder`` (created if missing); the paths written.

    Every output is checked before any is written, so a refusal leaves the folder as it was;
    an existing file is replaced only with ``force``, as for every cgdm output.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(20, "is not a folder", str(folder))
    outputs = {folder / n: page_source(n) for n in PAGE_FILES}
    scripts: dict[str, str] = {}
    for weights in av1_weights(all_weights):
        text, ids = model_script(weights)
        name = f"weights-{weights.stem}.js"
        outputs[folder / name] = text.encode()
        scripts.update({key: name for key in ids})
    outputs.update({folder / n: data for n, data in runtime_scripts().items()})
    outputs[folder / WEIGHTS_JS] = weights_module(weights_names(), scripts).encode()
    if not force:
        for path in outputs:
            if path.exists() or path.is_symlink():
                raise OutputExistsError(path)
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in outputs.items():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return list(outputs)
