"""The torch-free runtime: ONNX graphs of the shipped weights, the numpy sampler path, and
default AV1 decodes and encodes that never import torch."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
torch = pytest.importorskip("torch")
from PIL import Image

import cgdm_codec
from cgdm_codec import engines, generations
from cgdm_codec.base.registry import backend
from cgdm_codec.container import parse
from cgdm_codec.diffusion_config import CgdmConfig
from cgdm_codec.errors import WeightsError
from cgdm_codec.models.cgdm import Cgdm
from cgdm_codec.runtime import OrtDenoiser, OrtSyntaxGenerator, graph_paths
from cgdm_codec.sampling.restore import decode_canvas, restore
from cgdm_codec.weights import read_manifest, weights_dir
from conftest import textured

pytestmark = pytest.mark.torch

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
AV1_WEIGHTS = backend("av1").diffusion_weights


@pytest.mark.parametrize("name", AV1_WEIGHTS)
def test_every_shipped_av1_generation_has_checked_graphs(name):
    """Files written last week are users' files too: every AV1 generation decodes torch-free."""
    path = weights_dir() / f"{name}.safetensors"
    manifest = read_manifest(path)
    graphs = graph_paths(path, manifest)
    assert set(graphs) == {"condition", "features", "denoise", "syntax"}
    assert all(p.stat().st_size < 500_000 for p in graphs.values())  # tensors stay in the safetensors


@pytest.mark.parametrize("r", [1, 2, 4])
def test_the_exported_stem_is_the_unshuffle_stem(r):
    """train.export_onnx folds pixel-unshuffle + 3x3 conv into one strided conv: same function."""
    from torch import nn

    from cgdm_lab.train.export_onnx import StridedStem

    torch.manual_seed(r)
    stem = nn.Sequential(nn.PixelUnshuffle(r), nn.Conv2d(3 * r * r, 16, 3, padding=1))
    x = torch.rand(2, 3, 8 * r, 12 * r) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(StridedStem(stem)(x), stem(x), atol=1e-5, rtol=0)


def test_a_damaged_graph_is_refused(tmp_path):
    import shutil

    src = weights_dir()
    for f in src.glob("cgdm-av1-3.*"):
        shutil.copy(f, tmp_path / f.name)
    graph = tmp_path / "cgdm-av1-3.denoise.onnx"
    graph.write_bytes(graph.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(WeightsError, match="damaged"):
        graph_paths(tmp_path / "cgdm-av1-3.safetensors", read_manifest(tmp_path / "cgdm-av1-3.safetensors"))


@pytest.mark.parametrize("name", AV1_WEIGHTS)
def test_onnx_decode_equals_the_torch_decode(name):
    """The same sampler over numpy + ONNX Runtime and over torch: within the golden tolerance."""
    path = weights_dir() / f"{name}.safetensors"
    cfg = CgdmConfig.from_dict(read_manifest(path)["config"])
    model = Cgdm.from_weights(path)
    rgb = textured(150, 410, seed=3)
    symbols = np.arange(cfg.syntax.length) % 5 - 2
    ort = decode_canvas(OrtDenoiser(graph_paths(path, read_manifest(path)), cfg.unet, 1),
                        rgb.transpose(2, 0, 1)[None], symbols, 120, 7, 2, cfg.sampler)
    ref = restore(model, torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous(), torch.from_numpy(symbols),
                  120, 7, 2, precision="fp32").numpy()
    err = np.abs(np.rint(ort * 255) - np.rint(ref * 255))
    assert err.mean() <= 0.01 and err.max() <= 1


def test_tiles_side_by_side_equal_one_batch(monkeypatch):
    """Small tiles run one per core, large ones as one batch on all cores: the same pixels."""
    import cgdm_codec.runtime as runtime

    path = weights_dir() / f"{AV1_WEIGHTS[-1]}.safetensors"
    cfg = CgdmConfig.from_dict(read_manifest(path)["config"])
    rgb = textured(300, 700, seed=5).transpose(2, 0, 1)[None]
    symbols = np.arange(cfg.syntax.length) % 7 - 3

    used_pool = []

    def decode(threads: int) -> np.ndarray:
        den = OrtDenoiser(graph_paths(path, read_manifest(path)), cfg.unet, threads)
        out = decode_canvas(den, rgb, symbols, 90, 11, 1, cfg.sampler)
        used_pool.append(den._pool is not None)
        return out

    tilewise = decode(2)
    monkeypatch.setattr(runtime, "TILEWISE_MAX_PIXELS", 0)
    batched = decode(2)
    assert used_pool == [True, False]
    assert np.array_equal(np.rint(tilewise * 255), np.rint(batched * 255))
    np.testing.assert_allclose(tilewise, decode(1), atol=1e-5)


@pytest.mark.parametrize("size, most", [((300, 700), None), ((1030, 40), None), ((3, 5), None),
                                        ((1100, 1300), 4)])
def test_onnx_syntax_generator_equals_torch(size, most):
    """Pooled tile by tile (edge tiles thinner than every band included) like the torch one,
    over the same spread of windows when told to read only some."""
    path = weights_dir() / f"{AV1_WEIGHTS[-1]}.safetensors"
    manifest = read_manifest(path)
    cfg = CgdmConfig.from_dict(manifest["config"])
    model = Cgdm.from_weights(path)
    gen = torch.Generator().manual_seed(sum(size))
    x = torch.rand(1, 3, *size, generator=gen)
    xt = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    with torch.no_grad():
        want = model.syntax(x, xt, tiled=True, unit=True, most=most).numpy().reshape(-1)
    got = OrtSyntaxGenerator(graph_paths(path, manifest)["syntax"], path, cfg.syntax, 1).values(
        x.numpy(), xt.numpy(), most)
    assert np.abs(got - want).max() < 1e-3
    if most is not None:  # the spread reads fewer windows, so its answer is its own
        with torch.no_grad():
            every = model.syntax(x, xt, tiled=True, unit=True).numpy().reshape(-1)
        assert np.abs(every - want).max() > 1e-4


def _run(code: str, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_default_av1_decode_and_encode_never_import_torch():
    """The default path on a CPU: decode every shipped generation's golden file and encode a
    new file with the diffusion stage (syntax generator and the base-only decision included)."""
    stems = [p.stem for p in sorted(GOLDEN.glob("av1-cgdm*.cgdm"))]
    # the README's photo-like card: the stage wins there under the newest generation's
    # objective (on the synthetic noise texture of ``textured`` the base-only decode does)
    src = Path(__file__).resolve().parents[2] / "examples" / "card.png"
    code = ("import sys\n"
            "import cgdm_codec\n"
            "import cgdm_codec\n"
            "from cgdm_codec import pipeline\n"
            "from cgdm_codec.container import parse\n"
            "from cgdm_codec.options import DecodeSettings\n"
            "from PIL import Image\n"
            "for stem in sys.argv[2:]:\n"
            "    pipeline.decode_file(parse(open(f'{sys.argv[1]}/{stem}.cgdm', 'rb').read()), DecodeSettings(device='cpu'))\n"
            f"data = cgdm_codec.encode(Image.open({str(src)!r}), 3, base='av1', device='cpu')\n"
            "f = parse(data)\n"
            "pipeline.decode_file(f, DecodeSettings(device='cpu'))\n"
            "print(f.diffusion, 'torch' in sys.modules, 'compressai' in sys.modules)\n")
    assert _run(code, str(GOLDEN), *stems) == "True False False"


class _Stop(Exception):
    pass


@pytest.mark.parametrize("effort, where", [("default", "cgdm_codec.tuning.light.single_pass"),
                                           ("max", "cgdm_codec.tuning.search.search")])
def test_both_encoders_score_with_the_generations_objective(monkeypatch, effort, where):
    """The torch-free single pass and the torch search both get the newest generation's
    training objective (HaarPSI included), not the defaults."""
    from cgdm_codec.quality.objective import Objective

    module, name = where.rsplit(".", 1)
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs["objective"])
        raise _Stop

    monkeypatch.setattr(importlib.import_module(module), name, spy)
    with pytest.raises(_Stop):
        cgdm_codec.encode(Image.fromarray(textured(64, 96, seed=1)), 3, base="av1", device="cpu", effort=effort)
    newest = backend("av1").diffusion_weights[-1]
    assert seen == [Objective.of(json.loads((weights_dir() / f"{newest}.json").read_text()))]
    assert seen[0].lambda_h > 0


def test_runtime_choice(monkeypatch):
    newest = generations.load_bundle("av1").newest.generation
    monkeypatch.delenv(engines.ENV_RUNTIME, raising=False)
    monkeypatch.setattr(engines, "_cuda_hint", lambda: False)
    assert engines.choose("auto", "auto", newest, False) == "onnx"
    assert engines.choose("auto", "cpu", newest, True) == "torch"  # the learned base
    assert engines.choose("torch", "cpu", newest, False) == "torch"
    assert engines.choose("auto", "cuda", newest, False) == "torch"
    monkeypatch.setenv(engines.ENV_RUNTIME, "torch")
    assert engines.choose(None, "cpu", newest, False) == "torch"
    with pytest.raises(ValueError, match="unknown runtime"):
        engines.choose("tpu", "cpu", newest, False)


def test_missing_torch_is_one_clear_line(monkeypatch):
    from cgdm_codec.errors import MissingDependency

    monkeypatch.setattr(generations, "torch_installed", lambda: False)
    with pytest.raises(MissingDependency, match=r"pip install 'cgdm-codec\[torch\]'"):
        engines.choose("torch", "cpu", generations.load_bundle("av1").newest.generation, False)


def test_manifests_record_graph_hashes():
    for name in AV1_WEIGHTS:
        manifest = json.loads((weights_dir() / f"{name}.json").read_text())
        assert set(manifest["onnx"]) == {"condition", "features", "denoise", "syntax"}


def test_learned_base_without_torch_is_one_clear_line(monkeypatch):
    from cgdm_codec.errors import MissingDependency

    monkeypatch.setattr(generations, "torch_installed", lambda: False)
    generations.clear_cache()
    try:
        with pytest.raises(MissingDependency, match="the hyperprior base codec needs torch"):
            generations.load_bundle("hyperprior")
    finally:
        generations.clear_cache()


def test_weights_rewritten_under_a_running_process(tmp_path):
    """Loaded tensors do not depend on the file any more, and a re-export replaces the file
    (a new inode) instead of truncating the one a running process may have mapped."""
    import shutil

    from cgdm_codec.weights import load_tensors, save_weights

    src = weights_dir() / "cgdm-av1-3.safetensors"
    path = tmp_path / "w.safetensors"
    shutil.copy(src, path)
    tensors = load_tensors(path)
    inode = path.stat().st_ino
    path.write_bytes(b"")  # truncated under the loaded tensors: no SIGBUS on access
    assert float(sum(t.float().sum() for t in tensors.values())) != 0.0
    save_weights(path, tensors, {"kind": "test"})
    assert path.stat().st_ino != inode and not list(tmp_path.glob(".*.tmp"))


def test_syntax_generator_reads_uint8_pairs_a_window_at_a_time_to_the_same_values():
    """The encoder hands the generator 8-bit images (no float copies of a large photo):
    the values are those of the images mapped to [0, 1] first, to the bit."""
    path = weights_dir() / f"{AV1_WEIGHTS[-1]}.safetensors"
    manifest = read_manifest(path)
    cfg = CgdmConfig.from_dict(manifest["config"])
    gen = OrtSyntaxGenerator(graph_paths(path, manifest)["syntax"], path, cfg.syntax, 1)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (1, 3, 600, 530), dtype=np.uint8)
    xt = np.clip(x.astype(np.int16) + rng.integers(-9, 10, x.shape), 0, 255).astype(np.uint8)
    unit = lambda a: a.astype(np.float32) / np.float32(255.0)  # noqa: E731
    assert np.array_equal(gen.values(x, xt), gen.values(unit(x), unit(xt)))
    assert np.array_equal(gen.values(x, xt, 2), gen.values(unit(x), unit(xt), 2))
