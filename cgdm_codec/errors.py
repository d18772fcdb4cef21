"""User-facing error types, importable without torch or numpy (the CLI catches these)."""

from .container import ConfigError, FormatError


class ImageError(ValueError):
    """A problem with an input or output image, as one line for the user."""


class WeightsError(RuntimeError):
    """The weights a file needs are missing or differ from the installed ones."""


class MissingDependency(RuntimeError):
    """An optional dependency (torch, for the learned base, CUDA or --effort max) is missing."""


__all__ = ["ConfigError", "FormatError", "ImageError", "MissingDependency", "WeightsError"]
