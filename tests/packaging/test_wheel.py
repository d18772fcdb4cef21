"""A built wheel carries the weights: a non-editable install decodes like the checkout. It
carries the codec only: training and evaluation are the lab's wheel (lab/, ``cgdm_lab``).

Builds offline with the environment's own setuptools (no build isolation, no index), from a
copy of the sources so the checkout gets no build/ or egg-info folders.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("base-hp1", "cgdm-small")


def _pip(*args: str, cwd: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-index",
                          "--disable-pip-version-check", "-q"],
                         cwd=cwd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    shutil.copy2(REPO / "pyproject.toml", src)
    shutil.copy2(REPO / "README.md", src)
    shutil.copytree(REPO / "cgdm_codec", src / "cgdm_codec",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _pip("wheel", ".", "--no-build-isolation", "-w", str(tmp / "dist"), cwd=src)
    (found,) = (tmp / "dist").glob("cgdm_codec-*.whl")
    return found


@pytest.fixture(scope="module")
def lab_wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("lab-wheel")
    src = tmp / "src"
    src.mkdir()
    shutil.copy2(REPO / "lab" / "pyproject.toml", src)
    shutil.copytree(REPO / "lab" / "cgdm_lab", src / "cgdm_lab",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    _pip("wheel", ".", "--no-build-isolation", "-w", str(tmp / "dist"), cwd=src)
    (found,) = (tmp / "dist").glob("cgdm_lab-*.whl")
    return found


def test_wheel_holds_the_codec_and_no_research_code(wheel, lab_wheel):
    """Training and evaluation ship in the lab's wheel, never in the codec's; the lab's
    wheel carries no weights (they are the codec's package data)."""
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n == "cgdm_codec/cli/__init__.py" for n in names)
    assert not [n for n in names if n.startswith(("cgdm_lab/", "cgdm_codec/train/", "cgdm_codec/evaluation/"))]
    lab = zipfile.ZipFile(lab_wheel).namelist()
    for module in ("train/cgdm.py", "train/base.py", "train/export_onnx.py", "evaluation/runner.py"):
        assert f"cgdm_lab/{module}" in lab
    assert all(n.startswith(("cgdm_lab/", "cgdm_lab-")) for n in lab)
    assert not [n for n in lab if n.endswith((".safetensors", ".onnx"))]


def test_the_lab_requires_this_checkouts_codec():
    """The lab imports the codec's internals: it pins the codec version of its own checkout."""
    import cgdm_codec

    lab = tomllib.loads((REPO / "lab" / "pyproject.toml").read_text())
    assert f"cgdm-codec=={cgdm_codec.__version__}" in lab["project"]["dependencies"]
    codec = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert not [p for p in codec["tool"]["setuptools"]["packages"]["find"]["include"] if "lab" in p]


@pytest.mark.torch  # cgdm eval checks its extra (torch, piq, scipy, matplotlib) first
def test_eval_without_the_lab_says_what_to_install(tmp_path):
    pytest.importorskip("piq")
    code = ("import sys\n"
            "class NoLab:  # an install without lab/: Python's own error for a missing package\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'cgdm_lab':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, NoLab())\n"
            "from cgdm_codec.cli import main\n"
            "main(['eval', sys.argv[1], '--out', sys.argv[2]])\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip() == ("cgdm: error: cgdm eval needs cgdm-lab, which is not installed: "
                                  "pip install -e ./lab (from a cgdm-codec checkout)")
    assert not (tmp_path / "out").exists()


def test_wheel_holds_the_weights_and_manifests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for stem in SHIPPED:
        for ext in (".safetensors", ".json"):
            assert f"cgdm_codec/weights/{stem}{ext}" in names
    for page in ("index.html", "app.js", "cgdm.js", "style.css", "weights.js"):  # cgdm web's page
        assert f"cgdm_codec/web/{page}" in names
    for stem in SHIPPED:  # the very bytes of the checkout: every weights id keeps resolving
        packed = zipfile.ZipFile(wheel).read(f"cgdm_codec/weights/{stem}.safetensors")
        assert packed == (REPO / "cgdm_codec" / "weights" / f"{stem}.safetensors").read_bytes()


def test_installed_wheel_finds_and_verifies_its_own_weights(wheel, tmp_path):
    target = tmp_path / "site"
    _pip("install", "--target", str(target), str(wheel), cwd=tmp_path)
    code = (
        "import json, sys, cgdm_codec\n"
        "from cgdm_codec import weights as w\n"
        "d = w.weights_dir()\n"
        "ids = {n: w.verified_manifest(d / (n + '.safetensors'))['sha256'] for n in sys.argv[1:]}\n"
        "print(json.dumps({'package': cgdm_codec.__file__, 'dir': str(d), 'ids': ids,\n"
        "                  'torch': 'torch' in sys.modules}))\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # -S: no site-packages at all, so only the installed wheel (not the editable checkout) can answer
    res = subprocess.run([sys.executable, "-S", "-c", code, *SHIPPED], cwd=elsewhere,
                         env={"PYTHONPATH": str(target), "PATH": ""}, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert Path(out["package"]).resolve().is_relative_to(target.resolve())
    assert Path(out["dir"]).resolve().is_relative_to(target.resolve())
    for stem in SHIPPED:
        manifest = json.loads((REPO / "cgdm_codec" / "weights" / f"{stem}.json").read_text())
        assert out["ids"][stem] == manifest["sha256"]
    assert not out["torch"]
