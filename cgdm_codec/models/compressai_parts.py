"""The three CompressAI parts the base codec is built from, without CompressAI's start-up.

``import compressai`` runs a package ``__init__`` that imports every model, dataset, zoo
entry and point-cloud transform, and with them torch_geometric and torch._dynamo: about
3 s of a 5 s start-up on a 2-core CPU, for code the codec never runs. When CompressAI is
not imported yet, this module registers its package without running that ``__init__``
(submodules still import normally from the installed package) and provides the two
entropy-coder queries CompressAI's entropy models ask the package for. If CompressAI was
already imported in full, that module is used as it is.

The registered package completes itself: user code in the same process that later does
``import compressai`` gets that module, and the first attribute it lacks (``__version__``,
``set_entropy_coder``, ...) runs the real ``__init__`` in it (``_complete``), so the user
sees the whole package, with the very submodules and classes the codec already uses.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings

# CompressAI still decorates helpers with torch.jit.script, which newer torch warns about.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)


def _complete(package: types.ModuleType, spec: importlib.machinery.ModuleSpec):
    """The package's PEP 562 ``__getattr__``: a submodule is imported (what ``import`` would
    do), any other missing name first runs the package's own ``__init__`` in it, once."""

    def __getattr__(name: str):
        if name.startswith("__") and name != "__version__":
            raise AttributeError(name)  # probes (__all__, __wrapped__, ...) never load it all
        if importlib.util.find_spec(f"{spec.name}.{name}") is not None:
            return importlib.import_module(f"{spec.name}.{name}")
        vars(package).pop("__getattr__", None)  # from here on an ordinary module
        spec.loader.exec_module(package)  # its __init__ replaces the two stand-in queries
        try:
            return vars(package)[name]
        except KeyError:
            raise AttributeError(f"module {spec.name!r} has no attribute {name!r}") from None

    return __getattr__


def _register_package() -> None:
    if "compressai" in sys.modules:
        return
    spec = importlib.util.find_spec("compressai")
    if spec is None or not spec.submodule_search_locations or spec.loader is None:
        raise ImportError("CompressAI is not installed")
    package = importlib.util.module_from_spec(spec)
    package.available_entropy_coders = lambda: ["ans"]  # the rANS coder CompressAI ships
    package.get_entropy_coder = lambda: "ans"
    package.__getattr__ = _complete(package, spec)
    sys.modules["compressai"] = package


_register_package()

from compressai.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: E402
from compressai.layers import GDN  # noqa: E402

__all__ = ["EntropyBottleneck", "GDN", "GaussianConditional"]
