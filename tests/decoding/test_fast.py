"""``--fast``: a file's fidelity decode by the narrower network distilled from its generation
(``cgdm-av1-6f`` for ``cgdm-av1-6``; docs/diffusion.md). Not bit for bit the file's own
decode, close to it; every other decode unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cgdm_codec
from cgdm_codec import generations
from cgdm_codec.weights import read_manifest, weights_dir

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FAST = "cgdm-av1-6f"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """In numpy, so the torch-free install runs these tests too (``quality.psnr`` needs torch)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def decoded(stem: str, **kw) -> np.ndarray:
    return np.asarray(cgdm_codec.decode((GOLDEN / f"{stem}.cgdm").read_bytes(), runtime="onnx", threads=1, **kw))


def test_the_distilled_network_is_installed_for_cgdm_av1_6_only():
    companion = generations.companion_of("av1", "cgdm-av1-6", "fast")
    assert companion is not None and companion.name == FAST
    assert generations.companion_of("av1", "cgdm-av1-5", "fast") is None
    manifest = read_manifest(weights_dir() / f"{FAST}.safetensors")
    teacher = read_manifest(weights_dir() / "cgdm-av1-6.safetensors")
    # narrower levels, the teacher's condition, sampler and decoder settings
    assert manifest["config"]["unet"]["widths"] == [16, 48, 48]
    assert {k: v for k, v in manifest["config"]["unet"].items() if k != "widths"} == teacher["config"]["unet"]
    assert manifest["config"]["sampler"] == teacher["config"]["sampler"]
    assert manifest["config"]["syntax"] == teacher["config"]["syntax"]


def test_a_fast_decode_is_near_the_files_own_decode_not_equal_to_it():
    want = np.asarray(Image.open(GOLDEN / "av1-cgdm6-q3.full.png"))
    fast = decoded("av1-cgdm6-q3", fast=True)
    base = decoded("av1-cgdm6-q3", base_only=True)
    assert np.array_equal(decoded("av1-cgdm6-q3"), want)  # the default decode is unchanged
    assert not np.array_equal(fast, want)  # the distilled network ran
    # it restores in the file's direction: nearer the file's decode than the AV1 picture is
    # (52.2 against 50.0 dB on this card, measured 2026-12-07)
    assert psnr(fast, want) > psnr(base, want) + 1.0


def test_fast_and_int8_together_run_the_distilled_networks_int8_graphs():
    from cgdm_codec.runtime import quantised_paths

    path = weights_dir() / f"{FAST}.safetensors"
    assert set(quantised_paths(path, read_manifest(path))) == {"denoise", "features"}
    fast = decoded("av1-cgdm6-q3", fast=True)
    both = decoded("av1-cgdm6-q3", fast=True, precision="int8")
    assert not np.array_equal(both, fast) and psnr(both, fast) >= 45.0  # 57 dB measured


def test_files_without_a_distilled_network_and_the_realism_dial_ignore_it():
    assert np.array_equal(decoded("av1-cgdm5-q3", fast=True), decoded("av1-cgdm5-q3"))
    assert np.array_equal(decoded("av1-cgdm6-q3", fast=True, realism=0.5), decoded("av1-cgdm6-q3", realism=0.5))


@pytest.mark.torch
def test_torch_runs_the_same_distilled_network():
    data = (GOLDEN / "av1-cgdm6-q3.cgdm").read_bytes()
    on_torch = np.asarray(cgdm_codec.decode(data, runtime="torch", device="cpu", threads=1, fast=True))
    assert psnr(on_torch, decoded("av1-cgdm6-q3", fast=True)) >= 50.0


def test_the_command_line_takes_fast(tmp_path):
    out = tmp_path / "fast.png"
    run = subprocess.run([sys.executable, "-m", "cgdm_codec.cli", "decode", str(GOLDEN / "av1-cgdm6-q3.cgdm"),
                          "-o", str(out), "--fast"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert np.array_equal(np.asarray(Image.open(out)), decoded("av1-cgdm6-q3", fast=True))


def test_a_fast_decode_needs_no_torch():
    code = ("import sys, cgdm_codec; cgdm_codec.decode(open(sys.argv[1], 'rb').read(), fast=True); "
            "print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code, str(GOLDEN / "av1-cgdm6-q3.cgdm")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
