"""ONNX Runtime's optimised graphs kept between processes (``cgdm_codec/graph_cache.py``):
the same bits as a graph optimised at load, a damaged entry never used, no cache when asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cgdm_codec
from cgdm_codec import graph_cache, runtime
from cgdm_codec.engines import onnx as onnx_engine
from cgdm_codec.weights import read_manifest, weights_dir

pytest.importorskip("onnxruntime")


def newest_graphs() -> dict[str, Path]:
    weights = weights_dir() / "cgdm-av1-6.safetensors"
    return runtime.graph_paths(weights, read_manifest(weights))


def run_tile(features, denoise) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (1, 3, 72, 88)).astype(np.float32)
    feats = features.run(None, {"x_tilde": x})
    width = next(i for i in denoise.get_inputs() if i.name == "cond").shape[1]
    cond = rng.uniform(-1, 1, (1, width)).astype(np.float32)
    feed = {"x_tilde": x, "cond": cond, **{f"e{i}": f for i, f in enumerate(feats)}}
    return feats + denoise.run(None, {i.name: feed[i.name] for i in denoise.get_inputs()})


def fresh(path: Path):
    return runtime.session.__wrapped__(path, 1)


def test_a_cached_graph_computes_the_same_bits_and_is_read_back(monkeypatch, tmp_path):
    graphs = newest_graphs()
    monkeypatch.setenv("CGDM_CACHE_DIR", "")
    plain = run_tile(fresh(graphs["features"]), fresh(graphs["denoise"]))
    monkeypatch.setenv("CGDM_CACHE_DIR", str(tmp_path))
    written = run_tile(fresh(graphs["features"]), fresh(graphs["denoise"]))  # optimises and writes
    records = sorted(tmp_path.glob("*.sha256"))
    assert len(records) == 2 and all(graph_cache.lookup(r) is not None for r in records)
    read = run_tile(fresh(graphs["features"]), fresh(graphs["denoise"]))  # loads the entries
    for a, b, c in zip(plain, written, read):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert len(list(tmp_path.iterdir())) == 6  # graph, tensors and record of each: nothing more


def test_a_damaged_entry_is_not_used_and_is_written_again(monkeypatch, tmp_path):
    monkeypatch.setenv("CGDM_CACHE_DIR", str(tmp_path))
    denoise = newest_graphs()["denoise"]
    fresh(denoise)
    record = next(tmp_path.glob("*.sha256"))
    tensors = next(tmp_path.glob("*.bin"))
    data = bytearray(tensors.read_bytes())
    data[len(data) // 2] ^= 0x40  # a weight changed, the file's size not
    tensors.write_bytes(bytes(data))
    assert graph_cache.lookup(record) is None
    fresh(denoise)  # optimised again and recorded again
    assert graph_cache.lookup(record) is not None
    assert bytes(data) != next(tmp_path.glob("*.bin")).read_bytes() and len(list(tmp_path.iterdir())) == 3


def test_an_empty_cache_dir_turns_it_off_and_an_unwritable_one_is_no_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CGDM_CACHE_DIR", "")
    assert graph_cache.cache_dir() is None and graph_cache.entry(newest_graphs()["features"], "x") is None
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CGDM_CACHE_DIR", str(blocker / "cache"))
    assert graph_cache.entry(newest_graphs()["features"], "x") is None
    fresh(newest_graphs()["features"])  # builds as without a cache


def test_decoding_through_the_cache_gives_the_golden_pixels(monkeypatch, tmp_path):
    golden = Path(__file__).parents[1] / "golden"
    monkeypatch.setenv("CGDM_CACHE_DIR", str(tmp_path))
    data = (golden / "av1-cgdm6-q3.cgdm").read_bytes()
    want = np.asarray(Image.open(golden / "av1-cgdm6-q3.full.png"))
    for _ in range(2):  # the first decode writes the entries, the second reads them
        runtime.session.cache_clear()
        onnx_engine.denoiser.cache_clear()  # its condition session is built with it
        assert np.array_equal(np.asarray(cgdm_codec.decode(data)), want)
    assert len(list(tmp_path.glob("*.sha256"))) == 3  # condition, features, denoise


def test_a_graph_that_cannot_be_written_still_decodes(monkeypatch, tmp_path):
    """A cache folder that accepts the key but not the files (a full disk, a folder removed
    meanwhile): the session is built as without a cache, and nothing is recorded."""
    monkeypatch.setenv("CGDM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(graph_cache, "destination",
                        lambda record: (record.parent / "gone" / "graph.onnx", "graph.bin"))
    graphs = newest_graphs()
    out = run_tile(fresh(graphs["features"]), fresh(graphs["denoise"]))
    monkeypatch.setenv("CGDM_CACHE_DIR", "")
    assert all(np.array_equal(a, b) for a, b in zip(out, run_tile(fresh(graphs["features"]), fresh(graphs["denoise"]))))
    assert not list(tmp_path.glob("*.sha256"))


def fake_entry(folder: Path, name: str, size: int, age_s: float) -> Path:
    """A whole entry of ``size`` bytes, last used ``age_s`` ago (what ``commit`` writes)."""
    import hashlib
    import os
    import time

    stem = f"{name}.{hashlib.sha256(name.encode()).hexdigest()[:24]}"
    files = [folder / f"{stem}.1-1.onnx", folder / f"{stem}.1-1.bin"]
    files[0].write_bytes(b"g" * 100)
    files[1].write_bytes(b"t" * (size - 100))
    record = folder / f"{stem}.sha256"
    record.write_text("".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()} {f.name}\n" for f in files))
    then = time.time() - age_s
    for f in [*files, record]:
        os.utime(f, (then, then))
    return record


def test_writing_an_entry_drops_the_least_recently_used_beyond_the_bound(monkeypatch, tmp_path):
    monkeypatch.setenv("CGDM_CACHE_DIR", str(tmp_path))
    features = newest_graphs()["features"]
    fresh(features)  # its own entry, to learn its size
    own = sum(f.stat().st_size for f in tmp_path.iterdir())
    for f in list(tmp_path.iterdir()):
        f.unlink()
    day = 86400.0
    oldest = fake_entry(tmp_path, "oldest", 4000, 30 * day)
    old = fake_entry(tmp_path, "old", 4000, 20 * day)
    used = fake_entry(tmp_path, "used", 4000, 40 * day)  # the oldest written
    assert graph_cache.lookup(used) is not None  # a read marks it used now
    monkeypatch.setattr(graph_cache, "MAX_BYTES", own + 2 * 4000 + 500)
    fresh(features)  # writes an entry, and prunes
    left = sorted(r.name.split(".")[0] for r in tmp_path.glob("*.sha256"))
    assert left == ["cgdm-av1-6", "old", "used"]  # the oldest went, whole
    assert not [f for f in tmp_path.iterdir() if f.name.startswith("oldest")]
    assert graph_cache.lookup(old) is not None and graph_cache.lookup(used) is not None
    monkeypatch.setattr(graph_cache, "MAX_BYTES", 0)
    fresh(newest_graphs()["condition"])  # a bound below one entry keeps the entry just written
    assert [r.name.split(".")[1] for r in tmp_path.glob("*.sha256")] == ["condition"]
    assert len(list(tmp_path.iterdir())) == 3


def test_pruning_removes_a_killed_writers_files_and_nothing_that_is_not_ours(monkeypatch, tmp_path):
    import os
    import time

    monkeypatch.setenv("CGDM_CACHE_DIR", str(tmp_path))
    hexa = "0123456789abcdef01234567"
    stale = [tmp_path / f"x.{hexa}.7-8.onnx", tmp_path / f"x.{hexa}.7-8.bin", tmp_path / f"x.{hexa}.7-8.part"]
    young = tmp_path / f"y.{hexa}.9-9.onnx"  # a writer still at work
    foreign = [tmp_path / "notes.txt", tmp_path / "model.onnx", tmp_path / f"z.{hexa}.onnx"]
    then = time.time() - 2 * 3600
    for f in [*stale, young, *foreign]:
        f.write_bytes(b"x")
        if f is not young:
            os.utime(f, (then, then))
    fresh(newest_graphs()["features"])
    assert not any(f.exists() for f in stale)
    assert young.exists() and all(f.exists() for f in foreign)
