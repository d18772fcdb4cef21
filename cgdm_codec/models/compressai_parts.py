"""The three CompressAI parts the base codec is built from, without CompressAI's start-up.

``import compressai`` runs a package ``__init__`` that imports every model, dataset, zoo
entry and point-cloud transform, and with them torch_geometric and torch._dynamo: about
3 s of a 5 s start-up on a 2-core CPU, for code the codec never runs. When CompressAI is
not imported yet, this module registers its package without running that ``__init__``
(submodules still import normally from the installed package) and provides the two
entropy-coder queries CompressAI's entropy models ask the package for. If CompressAI was
already imported in full, that module is used as it is.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

# CompressAI still decorates helpers with torch.jit.script, which newer torch warns about.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)


def _register_package() -> None:
    if "compressai" in sys.modules:
        return
    spec = importlib.util.find_spec("compressai")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("CompressAI is not installed")
    package = importlib.util.module_from_spec(spec)
    package.available_entropy_coders = lambda: ["ans"]  # the rANS coder CompressAI ships
    package.get_entropy_coder = lambda: "ans"
    sys.modules["compressai"] = package


_register_package()

from compressai.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: E402
from compressai.layers import GDN  # noqa: E402

__all__ = ["EntropyBottleneck", "GDN", "GaussianConditional"]
