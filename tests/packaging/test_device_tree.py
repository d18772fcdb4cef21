"""A lent accelerator takes a working tree of at most 64 MiB (``benchmarks/device_tree.sh``):
the checkout as it is does not fit, its slim sparse form must, with room for a pack."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "device_tree.sh"
ROOM_FOR_DATA = 25 * 2**20  # a pack, the wheels and the validation photos (docs/diffusion.md)


def travelling_bytes(out: str) -> int:
    return int(out.split(" bytes would travel")[0].split()[-1])


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_the_slim_tree_leaves_room_for_the_data_and_the_whole_tree_comes_back(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    script = clone / "benchmarks" / "device_tree.sh"
    shutil.copy(SCRIPT, script)  # the checkout's own version, committed or not
    whole = subprocess.run(["bash", str(script), "size"], capture_output=True, text=True)
    slim = subprocess.run(["bash", str(script), "slim"], capture_output=True, text=True, check=True)
    assert (clone / "cgdm_codec" / "weights" / "cgdm-av1-6.safetensors").is_file()
    assert not (clone / "results").exists() and not (clone / "cgdm_codec" / "weights" / "base-hp1.safetensors").exists()
    assert travelling_bytes(slim.stdout) + ROOM_FOR_DATA <= 64 * 2**20
    assert whole.returncode != 0 and travelling_bytes(whole.stdout) > 64 * 2**20  # why it exists
    subprocess.run(["bash", str(script), "full"], capture_output=True, check=True)
    assert (clone / "cgdm_codec" / "weights" / "base-hp1.safetensors").is_file() and (clone / "results").is_dir()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=clone,
                            capture_output=True, text=True, check=True)
    assert status.stdout == ""
    shutil.rmtree(clone)  # ~160 MB that pytest would otherwise keep with its last runs
