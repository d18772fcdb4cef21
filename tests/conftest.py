import importlib.util
import os

import numpy as np
import pytest

#: Whether torch (the ``torch`` extra) is installed. The light install (``pip install -e
#: '.[test]'``) has no torch: there ``pytest -m "not torch"`` runs the tests that need none,
#: and this file imports torch only inside the fixtures that use it.
HAVE_TORCH = importlib.util.find_spec("torch") is not None

if HAVE_TORCH:
    import torch

    torch.set_num_threads(2)

# A test that leaves the base codec unnamed runs on the product's default (AV1), whatever the
# shell's CGDM_BASE says; the tests of the learned base name it (and carry the `torch` marker).
os.environ.pop("CGDM_BASE", None)
# ONNX Runtime's optimised graphs (cgdm_codec/graph_cache.py) go to a folder of this run, not
# the user's cache; subprocesses inherit it
if "CGDM_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["CGDM_CACHE_DIR"] = tempfile.mkdtemp(prefix="cgdm-test-cache-")
    atexit.register(shutil.rmtree, os.environ["CGDM_CACHE_DIR"], True)


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth photo-like test card: gradients, an edge, a little texture (deterministic)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 90 * np.sin(xx / max(w, 1) * 3.1 + 0.5)
    g = 60 + 150 * yy / max(h - 1, 1)
    b = np.where(xx + yy > (h + w) / 2, 200.0, 40.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def card():
    return textured


def cpu_precision(monkeypatch, bf16: bool) -> None:
    """Run the networks on the CPU in bfloat16 (as on AMX CPUs) or float32, whatever this CPU has."""
    from cgdm_codec import device  # imports torch

    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: bf16)


@pytest.fixture
def float32_cpu(monkeypatch):
    """Decode in float32 even on a CPU with AMX tiles, where the networks would run in
    bfloat16: the golden decodes were stored from float32 and pin that precision class
    (the pixels depend on it by design, docs/reliability.md). `test_golden_files_in_bfloat16`
    bounds how far the other class lies from them. Without torch there is nothing to pin:
    ONNX Runtime runs the networks in float32."""
    if HAVE_TORCH:
        cpu_precision(monkeypatch, bf16=False)


@pytest.fixture
def one_thread():
    """Keep the small model tests on one thread (they are faster so, and so is CI)."""
    if not HAVE_TORCH:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
