"""How a decode travels through the package's layers: how often it enters ``pipeline.py``
and how often a call climbs from a lower layer back into a higher one.

    python benchmarks/decode_path.py [FILE.cgdm] [--realism R] [--show]

A ``sys.setprofile`` hook sees every Python call on the main thread during one
``cgdm_codec.decode(FILE)``. A call is a transition when its function lives in another
``cgdm_codec`` module than the nearest ``cgdm_codec`` frame below it (calls through numpy,
functools and the like are attributed to the package frame that made them). It counts:

- ``pipeline entries``: transitions into ``pipeline.py``;
- ``climbs``: transitions from a lower layer into a higher one, in the order
  cli > api/pillow/distributed > pipeline > options/generations/engines/weights/runtime >
  everything else (base, models, sampling, entropy models, container, quality...); split
  into ``by name`` (the lower part imports the higher one) and ``handed down`` (a callback or
  an object the higher layer passed in: a progress function, the sampler's denoiser);
- ``out of pipeline``: calls from ``pipeline.py`` into other parts, and how many parts.

The file is decoded once untraced (so that module imports are not counted), then every
``functools.lru_cache`` of the package is cleared and the traced decode loads the weights
again, as a process's first decode does. Counts only: no timing.
"""

from __future__ import annotations

import argparse
import ast
import collections
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = ROOT / "tests" / "golden" / "av1-cgdm5-q3.cgdm"
LAYERS = {  # top-level part of the package -> layer (higher calls lower)
    "cli": 5,
    "api": 4, "pillow": 4, "distributed": 4, "__init__": 4,
    "pipeline": 3,
    # options: the settings objects every surface builds and the pipeline is handed
    # (standard library only, imported by the pipeline, importing none of the layers above)
    "options": 2, "generations": 2, "engines": 2, "weights": 2, "runtime": 2,
}
OTHERS = 1


def part(filename: str) -> str | None:
    """The package part (``pipeline``, ``engines``, ``base``...) a code object's file is in."""
    package = ROOT / "cgdm_codec"
    try:
        rel = Path(filename).resolve().relative_to(package)
    except ValueError:
        return None
    return rel.parts[0].removesuffix(".py")


@functools.lru_cache(maxsize=None)
def imports(name: str) -> frozenset[str]:
    """The package parts that the files of part ``name`` import (by name, anywhere in them)."""
    base = ROOT / "cgdm_codec" / name
    files = sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
    found = set()
    for path in files:
        rel = path.relative_to(ROOT / "cgdm_codec").with_suffix("").parts
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    parts = (node.module or "").split(".")
                    target = parts[1:] if parts[0] == "cgdm_codec" else []
                else:
                    target = [*rel[:len(rel) - node.level], *(node.module or "").split(".")]
                    target = [t for t in target if t]
                if target:
                    found.add(target[0])
                elif node.level:
                    found.update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split(".")
                    if parts[0] == "cgdm_codec" and len(parts) > 1:
                        found.add(parts[1])
    return frozenset(found)


def clear_caches() -> None:
    """Every module-level ``lru_cache`` of the package, emptied (weights and sessions reload)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("cgdm_codec") and module is not None:
            for value in vars(module).values():
                if isinstance(value, functools._lru_cache_wrapper):
                    value.cache_clear()
                elif isinstance(value, type):
                    for attr in vars(value).values():
                        if isinstance(attr, functools._lru_cache_wrapper):
                            attr.cache_clear()


def climbs(moves: collections.Counter) -> tuple[int, int]:
    """(climbs by name, climbs handed down) among the transitions."""
    up = [(a, b, n) for (a, b), n in moves.items() if LAYERS.get(b, OTHERS) > LAYERS.get(a, OTHERS)]
    named = sum(n for a, b, n in up if b in imports(a))
    return named, sum(n for _, _, n in up) - named


def trace(run) -> collections.Counter:
    """The transitions of ``run()`` by (caller part, callee part), with their counts."""
    moves: collections.Counter = collections.Counter()
    parts: dict = {}

    def part_of(code) -> str | None:
        if code not in parts:
            parts[code] = part(code.co_filename)
        return parts[code]

    def hook(frame, event, arg) -> None:
        if event != "call":
            return
        callee = part_of(frame.f_code)
        if callee is None:
            return
        caller, back = None, frame.f_back
        while back is not None and caller is None:
            caller = part_of(back.f_code)
            back = back.f_back
        if caller is not None and caller != callee:
            moves[caller, callee] += 1

    sys.setprofile(hook)
    try:
        run()
    finally:
        sys.setprofile(None)
    return moves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--realism", type=float, default=0.0)
    ap.add_argument("--show", action="store_true", help="list every transition with its count")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import cgdm_codec

    data = args.file.read_bytes()
    cgdm_codec.decode(data, realism=args.realism)
    clear_caches()
    moves = trace(lambda: cgdm_codec.decode(data, realism=args.realism))
    entries = sum(n for (a, b), n in moves.items() if b == "pipeline")
    named, handed = climbs(moves)
    out = {b: n for (a, b), n in moves.items() if a == "pipeline"}
    print(f"{args.file.name} (realism {args.realism}): {entries} pipeline entries, {named + handed} climbs "
          f"({named} by name, {handed} handed down), {sum(out.values())} calls out of pipeline into "
          f"{len(out)} parts, {sum(moves.values())} transitions")
    if args.show:
        for (a, b), n in sorted(moves.items(), key=lambda kv: -kv[1]):
            up = LAYERS.get(b, OTHERS) > LAYERS.get(a, OTHERS)
            note = (" (climb by name)" if b in imports(a) else " (climb, handed down)") if up else ""
            print(f"  {n:6d}  {a} -> {b}{note}")


if __name__ == "__main__":
    main()
