"""The docs and results/ stay in step: every result a doc names exists, every result is named.

Measured output lives in ``results/<dataset>/<what>.<ext>`` (an evaluation run may be a
folder); the docs cite it by that path, repo-relative in text and ``../results/…`` in the
Markdown links of ``docs/``. A renamed or deleted file breaks a doc's citation, and a file no
doc cites is a figure nobody can find: both fail here. Torch-free, reads text only.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"

#: A results path as the docs write it: ``results/...`` or ``../results/...``, not part of a
#: longer path, ending before trailing punctuation.
_PATH = re.compile(r"(?<![\w./-])((?:\.\./)?results/[\w./+-]*[\w/])")


def _docs() -> list[Path]:
    return sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]


def _cited(doc: Path) -> list[tuple[str, Path]]:
    """(as written, resolved path) for every results path a doc names."""
    out = []
    for written in _PATH.findall(doc.read_text(encoding="utf-8")):
        base = doc.parent if written.startswith("../") else REPO
        out.append((written, (base / written).resolve()))
    return out


def test_every_cited_result_exists():
    missing = [f"{doc.relative_to(REPO)}: {written}"
               for doc in _docs() for written, path in _cited(doc) if not path.exists()]
    assert not missing, "docs cite results that are not there:\n" + "\n".join(missing)


def test_every_result_is_cited():
    cited = {path for doc in _docs() for _, path in _cited(doc)}
    orphans = [str(f.relative_to(REPO)) for f in sorted(RESULTS.rglob("*")) if f.is_file()
               and not any(f == c or c in f.parents for c in cited if c != RESULTS)]
    assert not orphans, "results no doc cites (cite them or remove them):\n" + "\n".join(orphans)


def test_results_are_filed_by_dataset():
    """results/ holds dataset folders only; nothing is left in the old docs/results/."""
    loose = [p.name for p in RESULTS.iterdir() if p.is_file()]
    assert not loose, f"files directly under results/ (file them under a dataset): {loose}"
    assert not (REPO / "docs" / "results").exists()
    stale = [str(doc.relative_to(REPO)) for doc in _docs() if "docs/results/" in doc.read_text()]
    assert not stale, f"docs still cite docs/results/: {stale}"


def test_the_index_lists_every_page():
    """docs/README.md names every page of docs/ (a new page adds its line there)."""
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    unlisted = [p.name for p in sorted((REPO / "docs").glob("*.md"))
                if p.name != "README.md" and f"`docs/{p.name}`" not in index]
    assert not unlisted, f"docs/README.md does not list {unlisted}: add a line saying what each answers"
