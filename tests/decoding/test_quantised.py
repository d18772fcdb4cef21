"""The int8 decode (``--precision int8``): the quantised graphs are derived, hash-checked files
made deterministically by ``cgdm_lab/train/quantise.py``; the int8 decode stays close to float32; the
default decode is float32 and unchanged (docs/quantisation.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cgdm_codec
from cgdm_codec import options, runtime
from cgdm_codec.errors import ConfigError, WeightsError
from cgdm_codec.quality import psnr
from cgdm_codec.runtime import OrtDenoiser, graph_paths, precision, precision_scope, quantised_paths
from cgdm_codec.weights import read_manifest, weights_dir
from conftest import textured

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
NAMES = ("cgdm-av1-5", "cgdm-av1-6", "cgdm-av1-6f", "cgdm-av1-5r")  # the weights shipped with int8 graphs
NAME = "cgdm-av1-6"  # the newest generation
#: int8 against float32 on the same file: 51-58 dB measured on training photos (levels 1-5)
#: and 54 dB on a 768x512 photo; a broken quantisation (a wrong scale, a float graph) is
#: far below or exactly equal.
MIN_PSNR_VS_FLOAT32 = 45.0


def weights(name: str = NAME) -> Path:
    return weights_dir() / f"{name}.safetensors"


@pytest.mark.parametrize("name", NAMES)
def test_the_shipped_int8_graphs_are_checked_and_small(name):
    graphs = quantised_paths(weights(name), read_manifest(weights(name)))
    # cgdm-av1-6 has an int8 features graph too, its stem in float32 (docs/quantisation.md)
    assert set(graphs) == ({"denoise"} if name == "cgdm-av1-5" else {"denoise", "features"})
    assert all(p.stat().st_size < 1_000_000 for p in graphs.values())  # int8 tensors, float ones external
    assert set(graph_paths(weights(name), read_manifest(weights(name)))) == {"condition", "features", "denoise", "syntax"}


def test_a_damaged_int8_graph_is_refused(tmp_path):
    for f in weights_dir().glob(f"{NAME}.*"):
        shutil.copy(f, tmp_path / f.name)
    graph = tmp_path / f"{NAME}.denoise.int8.onnx"
    graph.write_bytes(graph.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(WeightsError, match="damaged"):
        quantised_paths(tmp_path / f"{NAME}.safetensors", read_manifest(tmp_path / f"{NAME}.safetensors"))


def test_weights_without_int8_graphs_have_none():
    older = weights_dir() / "cgdm-av1-4.safetensors"
    assert quantised_paths(older, read_manifest(older)) == {}


@pytest.mark.torch  # onnx (train extra) or the float64 metrics (torch)
def test_quantisation_is_deterministic(tmp_path):
    """The same float graph and calibration feeds give the same bytes (so the manifest's
    sha256 names what the module makes), and the result runs."""
    import onnxruntime as ort

    from cgdm_lab.train.quantise import quantise_graph

    for f in weights_dir().glob(f"{NAME}.*"):
        shutil.copy(f, tmp_path / f.name)
    rng = np.random.default_rng(0)
    feeds = [{"x_tilde": rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)} for _ in range(3)]
    outs = []
    for i in range(2):
        out = tmp_path / f"{NAME}.features.t{i}.onnx"
        quantise_graph(tmp_path / f"{NAME}.features.onnx", out, feeds, "qdq", "minmax")
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    s = ort.InferenceSession(str(tmp_path / f"{NAME}.features.t0.onnx"), providers=["CPUExecutionProvider"])
    f32 = ort.InferenceSession(str(tmp_path / f"{NAME}.features.onnx"), providers=["CPUExecutionProvider"])
    got, want = s.run(None, feeds[0])[0], f32.run(None, feeds[0])[0]
    assert got.shape == want.shape and not np.array_equal(got, want)
    assert np.abs(got - want).mean() < 0.05 * np.abs(want).mean()


def test_calibration_refuses_a_validation_folder(tmp_path):
    from cgdm_lab.train.quantise import main

    with pytest.raises(SystemExit):
        main([str(weights()), "--data", str(tmp_path / "val" / "sunhays80")])


@pytest.fixture(scope="module")
def card() -> bytes:
    return cgdm_codec.encode(Image.fromarray(textured(96, 136, seed=4)), quality=2, diffusion=True, base="av1",
                             effort="fast", threads=1)


@pytest.mark.torch  # onnx (train extra) or the float64 metrics (torch)
def test_int8_decode_is_close_to_float32(card):
    default = np.asarray(cgdm_codec.decode(card, threads=1))
    f32 = np.asarray(cgdm_codec.decode(card, threads=1, precision="float32"))
    i8 = np.asarray(cgdm_codec.decode(card, threads=1, precision="int8"))
    assert np.array_equal(default, f32)
    assert not np.array_equal(i8, f32)  # the int8 graphs ran
    assert psnr(i8, f32) >= MIN_PSNR_VS_FLOAT32
    assert precision() == "float32"  # the scope ended with the decode


def test_the_environment_variable_chooses_int8(card, monkeypatch):
    f32 = np.asarray(cgdm_codec.decode(card, threads=1))
    monkeypatch.setenv("CGDM_PRECISION", "int8")
    i8 = np.asarray(cgdm_codec.decode(card, threads=1))
    assert np.array_equal(i8, np.asarray(cgdm_codec.decode(card, threads=1, precision="int8")))
    assert np.array_equal(f32, np.asarray(cgdm_codec.decode(card, threads=1, precision="float32")))
    monkeypatch.setenv("CGDM_PRECISION", "int4")
    with pytest.raises(ConfigError, match="CGDM_PRECISION"):
        cgdm_codec.decode(card, threads=1)


def test_a_bad_precision_is_refused(card):
    with pytest.raises(ConfigError, match="precision"):
        cgdm_codec.decode(card, precision="fp16")


@pytest.mark.torch  # onnx (train extra) or the float64 metrics (torch)
@pytest.mark.parametrize("stem", ["av1-cgdm5-q3", "av1-cgdm6-q3"])
def test_golden_file_decodes_as_stored_in_float32_and_near_it_in_int8(stem):
    f = (GOLDEN / f"{stem}.cgdm").read_bytes()
    want = np.asarray(Image.open(GOLDEN / f"{stem}.full.png"))
    assert np.array_equal(np.asarray(cgdm_codec.decode(f, runtime="onnx")), want)
    i8 = np.asarray(cgdm_codec.decode(f, runtime="onnx", precision="int8"))
    assert psnr(i8, want) >= MIN_PSNR_VS_FLOAT32


#: The realism network's int8 decode against its float32 one: 42-54 dB on the never-JPEG
#: photos (the lowest where the picture depends most on the file's noise: another seed moves
#: those by 25-28 dB), 50 and 53 dB on the golden files.
MIN_PSNR_REALISM = 40.0


@pytest.mark.torch  # the float64 metrics (torch)
@pytest.mark.parametrize("stem", ["av1-cgdm5-q3-map", "av1-cgdm6-q3"])
def test_the_realism_decode_runs_int8_too(stem):
    """cgdm-av1-5r decodes both generations' files above realism 0; under int8 its quantised
    graphs run (the texture stage after it is numpy, the same either way)."""
    f = (GOLDEN / f"{stem}.cgdm").read_bytes()
    f32 = np.asarray(cgdm_codec.decode(f, realism=1.0, runtime="onnx"))
    i8 = np.asarray(cgdm_codec.decode(f, realism=1.0, runtime="onnx", precision="int8"))
    assert not np.array_equal(i8, f32)  # the int8 graphs ran
    assert psnr(i8, f32) >= MIN_PSNR_REALISM
    assert np.array_equal(np.asarray(cgdm_codec.decode(f, realism=1.0, runtime="onnx", precision="float32")), f32)


def test_the_scope_is_per_thread():
    manifest = read_manifest(weights())
    den = OrtDenoiser(graph_paths(weights(), manifest), _unet(), 1, lambda: quantised_paths(weights(), manifest))
    seen = {}

    def other() -> None:
        seen["other"] = den.graph("denoise").name

    with precision_scope("int8"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        seen["here"] = den.graph("denoise").name
        assert den.graph("features").name == f"{NAME}.features.int8.onnx"
        assert den.graph("condition").name == f"{NAME}.condition.onnx"  # no int8 form: float32
    assert seen == {"other": f"{NAME}.denoise.onnx", "here": f"{NAME}.denoise.int8.onnx"}
    with pytest.raises(ValueError):
        with precision_scope("int4"):
            pass


def _unet():
    from cgdm_codec.diffusion_config import CgdmConfig

    return CgdmConfig.from_dict(read_manifest(weights())["config"]).unet


def test_the_option_tables_agree():
    assert options.PRECISIONS == runtime.PRECISIONS
    assert options.DECODE_OPTION["precision"].default is None


@pytest.mark.torch  # onnx (train extra) or the float64 metrics (torch)
def test_cli_precision(card, tmp_path):
    src = tmp_path / "card.cgdm"
    src.write_bytes(card)
    cli = [sys.executable, "-m", "cgdm_codec.cli", "decode", str(src), "--threads", "1", "-Q"]
    subprocess.run(cli + ["-o", str(tmp_path / "a.png")], check=True)
    subprocess.run(cli + ["-o", str(tmp_path / "b.png"), "--precision", "int8"], check=True)
    a, b = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png"))
    assert not np.array_equal(a, b) and psnr(b, a) >= MIN_PSNR_VS_FLOAT32
    bad = subprocess.run(cli + ["-o", str(tmp_path / "c.png"), "--precision", "int4"], capture_output=True)
    assert bad.returncode == 2


@pytest.mark.torch  # onnx (train extra) or the float64 metrics (torch)
def test_the_head_and_the_per_image_kernels_stay_float32():
    """train.quantise.FLOAT_NODES: float32 in the shipped graph, every other convolution int8."""
    import onnx

    from cgdm_lab.train.quantise import FLOAT_NODES, ZERO_INPUT_SCOPE

    for name in NAMES:
        path = weights(name)
        graph = onnx.load(str(quantised_paths(path, read_manifest(path))["denoise"]), load_external_data=False).graph
        dequantised = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
        reads_noise = any(value.name == "x_t" for value in graph.input)
        kept = {n for n in FLOAT_NODES["denoise"] if reads_noise or "/w_d/" not in n}
        assert kept <= set(convs), name
        if not reads_noise:  # cgdm-av1-6 on: the zero-input encoder's convolutions stay float32
            kept |= {n for n in convs if n.startswith(ZERO_INPUT_SCOPE)}
            assert len(kept) > len(FLOAT_NODES["denoise"]) - 3
        for conv, node in convs.items():
            assert (node.input[1] in dequantised) == (conv not in kept), (name, conv)


@pytest.mark.torch  # onnx (train extra)
def test_the_features_graphs_stem_stays_float32():
    """cgdm-av1-6's int8 features graph: every convolution int8 but the stem, which reads the image."""
    import onnx

    from cgdm_lab.train.quantise import FLOAT_NODES

    graph = onnx.load(str(quantised_paths(weights(), read_manifest(weights()))["features"]), load_external_data=False).graph
    dequantised = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    assert len(convs) == 10 and FLOAT_NODES["features"] == ("/consistency_encoder/stem/conv/Conv",)
    for conv, node in convs.items():
        assert (node.input[1] in dequantised) == (conv not in FLOAT_NODES["features"]), conv
