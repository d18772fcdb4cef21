"""``cgdm web DIR``: the browser viewer of ``.cgdm`` files as a self-contained static folder.

The page and its decoder are classic scripts (Chromium runs no module script from a
file:// page), shipped as package data in ``cgdm_codec/web`` (``docs/web.md``). This module
copies them and writes ``weights.js``, the names of the weights installed here by their
4-byte id, so that the page's info table names them as ``cgdm info`` does. The page
fetches nothing outside its folder and works from ``file://``. It decodes base-only: the
diffusion stage is not ported to the browser yet.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .atomic import OutputExistsError

#: The files the page is made of, in the package's ``web`` folder.
PAGE_FILES = ("index.html", "app.js", "cgdm.js", "style.css")
WEIGHTS_JS = "weights.js"


def weights_names() -> dict[str, str]:
    """Weights id (hex) -> name, for the AV1 weights installed here and "none".

    Manifests only, as ``cgdm info`` reads them: no weights file is loaded. A missing or
    unreadable manifest leaves its name out (the page then shows the id alone).
    """
    from .errors import WeightsError
    from .pipeline import NO_WEIGHTS_ID, cgdm_weights_paths
    from .weights import decoders, read_checked_manifest, weights_id

    names = {NO_WEIGHTS_ID.hex(): "none"}
    for path in cgdm_weights_paths("av1"):
        try:
            for identity, _ in decoders(read_checked_manifest(path)):
                names[weights_id(identity).hex()] = path.stem
        except (WeightsError, OSError, KeyError, TypeError):
            continue
    return names


def weights_module(names: dict[str, str]) -> str:
    """The ``weights.js`` module the page imports."""
    return ("// Written by `cgdm web`: the names of the weights installed with that cgdm, by id.\n"
            f"globalThis.CGDM_WEIGHTS = {json.dumps(names, indent=1, sort_keys=True)};\n")


def page_source(name: str) -> bytes:
    """One shipped file of the page."""
    return resources.files("cgdm_codec").joinpath("web", name).read_bytes()


def write_page(folder: Path, force: bool = False) -> list[Path]:
    """Write the viewer into ``folder`` (created if missing); the paths written.

    Every output is checked before any is written, so a refusal leaves the folder as it was;
    an existing file is replaced only with ``force``, as for every cgdm output.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(20, "is not a folder", str(folder))
    outputs = {folder / n: page_source(n) for n in PAGE_FILES}
    outputs[folder / WEIGHTS_JS] = weights_module(weights_names()).encode()
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
