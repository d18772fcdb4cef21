"""The evaluation's summary (a JSON-able dict) and its Markdown rendering."""

from __future__ import annotations

from .quality import ARTEFACTS, METRICS
from .summary import bd_table, complete_images, mean_curves

LOW_COVERAGE = 0.5  # BD-rates over less than half of the test curve's range are flagged


def summary(rows: list[dict], info: dict) -> dict:
    """Mean curves and BD-rates of ``rows``, with ``info`` (command, settings, notes) kept."""
    done, partial = complete_images(rows)
    curves = mean_curves(rows)
    names = [m for m in info.get("metrics", METRICS) if any(r.get(m) is not None for r in rows)]
    return {**info, "images_complete": len(done), "images_incomplete": partial,
            "curves": curves, "bd_metrics": names, "bd_rates": bd_table(curves, names),
            "diffusion_stage": stage_counts(rows)}


def stage_counts(rows: list[dict]) -> dict[str, list[int]]:
    """Per cgdm codec, [decodes that ran the diffusion stage, rows that say]: rows written
    before the field existed do not count."""
    counts: dict[str, list[int]] = {}
    for r in rows:
        if "stage" in r:
            c = counts.setdefault(r["codec"], [0, 0])
            c[0] += bool(r["stage"])
            c[1] += 1
    return counts


def _fmt(v: object, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


DIGITS = {"psnr": 2, "ms_ssim": 4, "haarpsi": 4, "vif": 4, "lpips": 4, "dists": 4}


def markdown(s: dict) -> str:
    """Averages per codec and setting, then BD-rates, as a self-describing Markdown page."""
    run, env, names = s.get("run", {}), s.get("environment", {}), s["bd_metrics"]
    lines = ["# cgdm eval", ""]
    if s.get("command"):
        lines.append(f"- command: `{s['command']}`")
    lines += [
        f"- date: {s.get('date', '')}",
        f"- images: {run.get('images', '?')} — {s['images_complete']} complete"
        + (f", {len(s['images_incomplete'])} incomplete (left out of the means)" if s["images_incomplete"] else ""),
        f"- downscale: {run.get('downscale')}; cgdm encode options: {run.get('encode') or 'defaults'}; "
        f"weights id {run.get('weights', '?')}",
        f"- machine: {env.get('cpu') or '?'}, {env.get('threads')} torch threads, device {env.get('device')}"
        f"{', ' + env['cuda'] if env.get('cuda') else ''}; torch {env.get('torch')}, Pillow {env.get('pillow')}, "
        f"piq {env.get('piq')}"
        + "".join(f", {fmt.upper()} by {src}" for fmt, src in (env.get("anchor_plugins") or {}).items()),
    ]
    for name, about in s.get("ablations", {}).items():
        lines.append(f"- ablation `{name}`: {about}")
    for name, a in s.get("anchors", {}).items():
        opts = ", ".join(f"{k}={v}" for k, v in a["options"].items())
        fmt = f" {a['format']}" if a.get("format") else ""
        lines.append(f"- anchor `{name}` (Pillow{fmt}; {opts}): quality {', '.join(map(str, a['sweep']))}")
    lines += [f"- note: {n}" for n in s.get("notes", [])]
    lines += [f"- `{codec}`: the diffusion stage ran in {ran} of {total} decodes"
              for codec, (ran, total) in s.get("diffusion_stage", {}).items()]
    lines += ["", "## Means over images", "",
              "bpp from the files' sizes on disk; seconds per megapixel and peak RSS (MiB) per "
              "call, in one process with the models already loaded.", "",
              "| codec | setting | n | bpp | " + " | ".join(METRICS[m][0] for m in names)
              + " | enc s/MP | dec s/MP | enc peak MiB | dec peak MiB |",
              "|---|---:|---:|---:|" + "---:|" * (len(names) + 4)]
    for codec, points in s["curves"].items():
        for p in points:
            cells = [codec, str(p["setting"]), str(p["n"]), _fmt(p.get("bpp"), 4)]
            cells += [_fmt(p.get(m), DIGITS.get(m, 4)) for m in names]
            cells += [_fmt(p.get(k), 3) for k in ("encode_s_per_mp", "decode_s_per_mp")]
            cells += [_fmt(p.get(k), 0) for k in ("encode_peak_mib", "decode_peak_mib")]
            lines.append("| " + " | ".join(cells) + " |")
    lines += artefact_table(s["curves"])
    lines += ["", "## BD-rate (%)", "",
              "Bjøntegaard delta rate of *test* against *anchor* at equal quality (piecewise-cubic "
              "interpolation of log-rate over the common metric range of the mean curves); "
              "negative = *test* needs fewer bits. – : undefined (fewer than two points, or no "
              f"common range); * : the common range is under {LOW_COVERAGE:.0%} of the test curve's.", "",
              "| test | anchor | " + " | ".join(METRICS[m][0] for m in names) + " |",
              "|---|---|" + "---:|" * len(names)]
    for e in s["bd_rates"]:
        cells = []
        for m in names:
            v, cov = e["bd_rate"].get(m), e["coverage"].get(m)
            cells.append("–" if v is None else f"{v:+.1f}" + ("*" if cov is not None and cov < LOW_COVERAGE else ""))
        lines.append(f"| {e['test']} | {e['anchor']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def artefact_table(curves: dict[str, list[dict]]) -> list[str]:
    """Means of the artefact measures per codec and setting (``cgdm_codec.artefacts``);
    nothing for results scored before they existed."""
    names = [a for a in ARTEFACTS if any(p.get(a) is not None for pts in curves.values() for p in pts)]
    if not names:
        return []
    lines = ["", "## Artefacts", "",
             "Period-2 ratio: luma power at the Nyquist frequency over the frequencies just below "
             "it (about 1 for photographs; a one-pixel grid gives several times that), beside the "
             "original's; edge overshoot: mean 8-bit luma levels outside the original's local range "
             "near its strongest edges; flat-area energy: finest-band energy over the original's on "
             "its flattest quarter (above 1: grain or a pattern added).", "",
             "| codec | setting | " + " | ".join(ARTEFACTS[a] for a in names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    for codec, points in curves.items():
        for p in points:
            lines.append(f"| {codec} | {p['setting']} | " + " | ".join(_fmt(p.get(a), 3) for a in names) + " |")
    return lines
