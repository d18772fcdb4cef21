"""cgdm: a perceptual image codec (AV1 or a learned base codec + consistency-guided diffusion).

The Python API::

    import cgdm_codec
    data = cgdm_codec.encode("photo.png", quality=3)   # -> bytes of a .cgdm file
    image = cgdm_codec.decode(data)                     # -> PIL.Image.Image
    cgdm_codec.info(data)                               # -> dict, as `cgdm info --json`

``encode``, ``decode`` and ``info`` live in :mod:`cgdm_codec.api` and are looked up lazily,
so ``import cgdm_codec`` stays instant: torch loads only when pixels are coded.
Errors are the one-line exceptions of :mod:`cgdm_codec.errors`, also importable from here.
``import cgdm_codec.pillow`` teaches Pillow to open and save ``.cgdm`` files.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("encode", "decode", "info")
_ERRORS = ("ConfigError", "FormatError", "ImageError", "MissingDependency", "WeightsError")
__all__ = ["__version__", *_API, *_ERRORS]


def __getattr__(name: str) -> Any:
    """Resolve the API on first use (PEP 562), keeping ``import cgdm_codec`` light."""
    if name in _API or name in _ERRORS:
        from . import api, errors

        value = getattr(api if name in _API else errors, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | set(_ERRORS))
