"""The Dask path (cgdm_codec.distributed): a LocalCluster of 2 workers over a few small images.

Base-only AV1 encodes and decodes (the AV1 base named explicitly: conftest makes the learned
base the default), so no torch is needed. Skipped when Dask is not installed,
except the test that the command then says how to install it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cgdm_codec import distributed as cd
from conftest import textured

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client():
    dd = pytest.importorskip("distributed")
    cluster = dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0")
    c = dd.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture
def images(tmp_path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for i, (h, w) in enumerate([(24, 32), (17, 9), (40, 40), (8, 64)]):
        Image.fromarray(textured(h, w, seed=i)).save(src / f"img{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (src / "notes.txt").write_text("not an image extension: skipped when the folder is given")
    return src


def test_encode_then_decode_a_folder(client, images, tmp_path):
    coded, decoded = tmp_path / "coded", tmp_path / "decoded"
    results = cd.encode([images], coded, client=client, quality=2, base="av1", base_only=True)
    by_name = {Path(r.path).name: r for r in results}
    assert sorted(by_name) == ["broken.png", "img0.png", "img1.png", "img2.png", "img3.png"]
    bad = by_name.pop("broken.png")
    assert not bad.ok and bad.bytes == 0 and "not a readable image" in bad.error
    assert "\n" not in bad.error and not Path(bad.output).exists()
    for r in by_name.values():
        assert r.ok and r.error is None, r
        assert r.bytes == Path(r.output).stat().st_size > 0
    assert sorted(p.name for p in coded.iterdir()) == ["img0.cgdm", "img1.cgdm", "img2.cgdm", "img3.cgdm"]
    # The weights (for the AV1 base: the check of the diffusion manifests) load once per worker
    # process, not per task; processes=False puts both workers in this process.
    state = cd.loaded()
    assert ("av1", False) in state["weights"] and state["tasks"] >= 5
    assert set(client.run(cd.loaded).values().__iter__().__next__()["weights"]) == set(state["weights"])

    back = cd.decode([coded], decoded, client=client, base_only=True, fmt="webp")
    assert all(r.ok for r in back) and len(back) == 4
    for r in back:
        with Image.open(r.output) as im:
            assert im.format == "WEBP"
            assert im.size == Image.open(images / (Path(r.path).stem + ".png")).size


@pytest.fixture(scope="module")
def tcp_cluster():
    dd = pytest.importorskip("distributed")
    cluster = dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                              host="127.0.0.1", dashboard_address=":0")
    yield cluster
    cluster.close()


def test_command_on_a_running_scheduler(tcp_cluster, images, tmp_path):
    """--scheduler ADDRESS: the tasks run on the cluster's workers (here: in this process)."""
    before = cd.loaded()["tasks"]
    res = subprocess.run([sys.executable, "-m", "cgdm_codec.distributed", "encode",
                          str(images / "img0.png"), str(images / "img1.png"), "-o", str(tmp_path / "c"),
                          "--scheduler", tcp_cluster.scheduler_address, "--base", "av1", "--base-only"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("cgdm: encoded 2 of 2 files") and "failed" not in res.stdout
    assert cd.loaded()["tasks"] == before + 2
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["img0.cgdm", "img1.cgdm"]


def test_existing_outputs_are_kept_unless_forced(client, images, tmp_path):
    out = tmp_path / "coded"
    out.mkdir()
    (out / "img0.cgdm").write_bytes(b"keep me")
    inputs = [images / "img0.png", images / "img1.png"]
    first = cd.encode(inputs, out, client=client, base="av1", base_only=True)
    assert [r.ok for r in first] == [False, True]
    assert "already exists" in first[0].error and (out / "img0.cgdm").read_bytes() == b"keep me"
    forced = cd.encode(inputs, out, client=client, base="av1", base_only=True, force=True)
    assert all(r.ok for r in forced) and (out / "img0.cgdm").read_bytes()[:3] == b"CGD"
    assert not list(out.glob(".cgdm-*"))  # no temporary file left behind


def test_damaged_cgdm_is_reported_and_the_others_decode(client, images, tmp_path):
    coded = tmp_path / "coded"
    assert all(r.ok for r in cd.encode([images / "img0.png", images / "img2.png"], coded, client=client,
                                       base="av1", base_only=True))
    data = bytearray((coded / "img2.cgdm").read_bytes())
    data[12] ^= 0xFF
    (coded / "img2.cgdm").write_bytes(bytes(data))
    results = cd.decode([coded / "img0.cgdm", coded / "img2.cgdm", tmp_path / "missing.cgdm"],
                        tmp_path / "out", client=client, base_only=True)
    assert [r.ok for r in results] == [True, False, False]
    assert "checksum" in results[1].error or "corrupt" in results[1].error, results[1].error
    assert "missing.cgdm" in results[2].error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0.png"]


def test_two_inputs_for_one_output_are_refused_before_any_work(images, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "img0.png").write_bytes((images / "img0.png").read_bytes())
    with pytest.raises(cd.ConfigError, match="would both be written"):
        cd.encode([images / "img0.png", other / "img0.png"], tmp_path / "out")


def test_command_on_a_local_cluster(images, tmp_path):
    pytest.importorskip("distributed")
    report = tmp_path / "report.json"
    res = subprocess.run([sys.executable, "-m", "cgdm_codec.distributed", "encode", str(images),
                          "-o", str(tmp_path / "coded"), "--workers", "2", "-q", "2", "--base-only", "--base", "av1",
                          "--report", str(report), "-Q"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 1, res.stderr
    assert res.stdout.count("\n") == 1
    assert res.stdout.startswith("cgdm: encoded 4 of 5 files") and "1 failed" in res.stdout, res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("cgdm: error:")]
    assert len(errors) == 1 and "broken.png" in errors[0], res.stderr
    rows = json.loads(report.read_text())
    assert sorted((Path(r["path"]).name, r["ok"]) for r in rows)[0] == ("broken.png", False)
    assert sum(r["ok"] for r in rows) == 4 and all(r["bytes"] > 0 for r in rows if r["ok"])


def test_without_dask_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "distributed" or m.startswith(("distributed.", "dask"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes "import distributed" fail
    src = tmp_path / "a.png"
    Image.fromarray(textured(8, 8)).save(src)
    assert cd.main(["encode", str(src), "-o", str(tmp_path / "out"), "--base-only", "--base", "av1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"cgdm: error: the distributed mode needs Dask; install it with: {cd.INSTALL_HINT}"


def test_importing_cgdm_does_not_import_dask():
    code = ("import sys, cgdm_codec, cgdm_codec.cli, cgdm_codec.distributed; "
            "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_usage_errors_are_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cd.main(["encode", "x.png"])  # no -o
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cgdm: error:") and len(err.splitlines()) == 1
