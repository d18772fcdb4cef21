"""Mean rate-quality curves over images, and BD-rate tables between them.

Curves are averaged per (codec, setting) over the images that have a row for every
(codec, setting) in the results, so that every point of every curve stands on the same
images even when a run was interrupted. BD-rates are computed between those mean curves
(mean bpp against mean metric), the usual way RD curves over a data set are compared.
"""

from __future__ import annotations

import math
from collections import defaultdict

from .bdrate import bd_rate, overlap
from .quality import ARTEFACTS, METRICS

CGDM = "cgdm"
MEAN_FIELDS = ("bpp", *METRICS, *ARTEFACTS, "encode_s_per_mp", "decode_s_per_mp", "encode_peak_mib",
               "decode_peak_mib")


def complete_images(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(images with a row for every (codec, setting) seen, images missing some)."""
    wanted = {(r["codec"], r["setting"]) for r in rows}
    have: dict[str, set] = defaultdict(set)
    for r in rows:
        have[r["image"]].add((r["codec"], r["setting"]))
    done = sorted(i for i, s in have.items() if s >= wanted)
    return done, sorted(set(have) - set(done))


def _mean(values: list) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(vals) / len(vals) if len(vals) == len(values) and vals else None


def mean_curves(rows: list[dict]) -> dict[str, list[dict]]:
    """codec -> points sorted by setting, each the mean of MEAN_FIELDS over complete images."""
    images = set(complete_images(rows)[0])
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        if r["image"] in images:
            groups[(r["codec"], r["setting"])].append(r)
    curves: dict[str, list[dict]] = defaultdict(list)
    for (codec, setting), rs in sorted(groups.items(), key=lambda kv: (codec_order(kv[0][0]), kv[0][1])):
        point = {"setting": setting, "n": len(rs)}
        for k in MEAN_FIELDS:
            if any(k in r for r in rs):
                point[k] = _mean([r.get(k) for r in rs])
        curves[codec].append(point)
    return dict(curves)


def codec_order(codec: str) -> tuple[int, str]:
    """cgdm first, its ablations next, then the anchors."""
    return (0 if codec == CGDM else 1 if codec.startswith(CGDM) else 2, codec)


def bd_pairs(codecs: list[str]) -> list[tuple[str, str]]:
    """(test, anchor) pairs: every cgdm curve vs every classical anchor, then cgdm vs each
    of its ablations."""
    ours = sorted((c for c in codecs if c.startswith(CGDM)), key=codec_order)
    anchors = sorted(c for c in codecs if not c.startswith(CGDM))
    pairs = [(t, a) for t in ours for a in anchors]
    if CGDM in ours:
        pairs += [(CGDM, a) for a in ours if a != CGDM]
    return pairs


def bd_table(curves: dict[str, list[dict]], metric_names: list[str]) -> list[dict]:
    """One entry per (test, anchor): BD-rate (%) per metric (None where undefined) and the
    fraction of the test curve's metric range the anchor covers."""
    table = []
    for test, anchor in bd_pairs(list(curves)):
        entry: dict = {"test": test, "anchor": anchor, "bd_rate": {}, "coverage": {}}
        for m in metric_names:
            t = [(p["bpp"], p.get(m)) for p in curves[test] if p.get(m) is not None]
            a = [(p["bpp"], p.get(m)) for p in curves[anchor] if p.get(m) is not None]
            if len(t) < 2 or len(a) < 2:
                entry["bd_rate"][m], entry["coverage"][m] = None, None
                continue
            entry["bd_rate"][m] = bd_rate([x for x, _ in a], [y for _, y in a], [x for x, _ in t],
                                          [y for _, y in t], higher_is_better=METRICS[m][1])
            entry["coverage"][m] = overlap([y for _, y in a], [y for _, y in t])
        table.append(entry)
    return table
