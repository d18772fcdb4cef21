"""The eval helpers in benchmarks/: reusing anchor rows and joining parallel parts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def row(image: str, codec: str, setting: int, bpp: float = 0.1) -> dict:
    return {"image": image, "codec": codec, "setting": setting, "bpp": bpp}


def write(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_reuse_anchors_keeps_what_weights_cannot_change(tmp_path):
    reuse = load("reuse_anchors")
    rows = [row("a", "avif", 30), row("a", "cgdm", 3), row("a", "cgdm:base-only", 3),
            row("a", "jpeg", 50)]
    write(tmp_path / "old", rows)
    assert reuse.main([str(tmp_path / "old"), str(tmp_path / "new")]) == 0
    kept = [json.loads(x)["codec"] for x in (tmp_path / "new/results.jsonl").read_text().splitlines()]
    assert kept == ["avif", "jpeg"]
    assert reuse.main([str(tmp_path / "old"), str(tmp_path / "new")]) == 1  # refuses to overwrite
    assert reuse.main([str(tmp_path / "old"), str(tmp_path / "new2"), "--base-only"]) == 0
    assert len((tmp_path / "new2/results.jsonl").read_text().splitlines()) == 3


def test_join_adds_only_missing_rows_first_part_winning():
    join = load("join_eval")
    main = [row("a", "cgdm", 1), row("a", "avif", 30)]
    part1 = [row("a", "cgdm", 1, bpp=9.0), row("b", "cgdm", 1, bpp=0.2)]
    part2 = [row("b", "cgdm", 1, bpp=0.3), row("b", "avif", 30)]
    added = join.missing_rows(main, [part1, part2])
    assert [(r["image"], r["codec"], r["bpp"]) for r in added] == [("b", "cgdm", 0.2), ("b", "avif", 0.1)]


def test_join_refuses_a_folder_without_rows(tmp_path, capsys):
    join = load("join_eval")
    write(tmp_path / "main", [row("a", "cgdm", 1)])
    (tmp_path / "empty").mkdir()
    code = join.main([str(tmp_path / "main"), str(tmp_path / "empty"), "--images", str(tmp_path)])
    assert code == 1
    assert "not found" in capsys.readouterr().err
