"""User-facing error types, importable without torch or numpy (the CLI catches these).

They import nothing of the package, so every layer can raise them without an import cycle
(``container`` re-exports ``FormatError`` and ``ConfigError``)."""


class FormatError(ValueError):
    """A ``.cgdm`` file (or a :class:`~cgdm_codec.container.CgdmFile`) violates the format.

    The message is a single user-readable line.
    """


class ConfigError(ValueError):
    """A user setting (option or environment variable) is invalid; one line for the user."""


class ImageError(ValueError):
    """A problem with an input or output image, as one line for the user."""


class WeightsError(RuntimeError):
    """The weights a file needs are missing or differ from the installed ones."""


class MissingDependency(RuntimeError):
    """An optional dependency (torch, for the learned base, CUDA or --effort max) is missing."""


__all__ = ["ConfigError", "FormatError", "ImageError", "MissingDependency", "WeightsError"]
