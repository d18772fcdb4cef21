"""rd.png: one panel per metric, bpp on the x axis, one curve per codec (means over images)."""

from __future__ import annotations

import math
from pathlib import Path

from .quality import METRICS

STYLE = {"cgdm": dict(color="black", lw=2.2, marker="o"), "jpeg": dict(color="tab:red", marker="s"),
         "webp": dict(color="tab:green", marker="^"), "avif": dict(color="tab:blue", marker="D"),
         "avif-s2": dict(color="navy", marker="D", ls="--", mfc="none"),
         "jxl": dict(color="tab:purple", marker="v")}
OTHER = dict(color="0.4", marker="o", ls="--")


def style_of(codec: str) -> dict:
    """Line style of a curve: fixed ones above; AVIF at another speed (``avif-sN``) in a
    light blue, dotted; cgdm's ablations and anything else grey, dashed."""
    if codec in STYLE:
        return dict(STYLE[codec])
    if codec.startswith("avif-s"):
        return dict(color="tab:cyan", marker="D", ls=":")
    return dict(OTHER)


def rd_plot(summary: dict, path: Path) -> None:
    """Write the RD plot; the x axis stops a little beyond cgdm's largest bpp, where the
    anchors' sweeps run on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, curves = summary["bd_metrics"], summary["curves"]
    if not names or not curves:
        return
    cols = 2 if len(names) in (2, 4) else min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    ours = [p["bpp"] for c, pts in curves.items() if c.startswith("cgdm") for p in pts]
    x_max = 1.6 * max(ours) if ours else None
    for ax, m in zip(axes.flat, names):
        for codec, pts in curves.items():
            xy = [(p["bpp"], p[m]) for p in pts if p.get(m) is not None and p.get("bpp") is not None]
            if not xy:
                continue
            style = dict(style_of(codec), ms=3.5, lw=1.3)
            if codec == "cgdm":
                style["lw"] = 2.2
            ax.plot(*zip(*xy), label=codec, **style)
        label, higher = METRICS[m]
        ax.set_title(label + ("" if higher else " (lower is better)"), fontsize=10)
        ax.set_xlabel("bpp")
        ax.grid(alpha=0.3)
        if x_max:
            ax.set_xlim(0, x_max)
            _fit_y(ax, curves, m, x_max)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8 if len(curves) <= 5 else 7, ncol=1 if len(curves) <= 5 else 2)
    n = summary.get("images_complete", 0)
    fig.suptitle(f"cgdm eval: means over {n} image{'s' if n != 1 else ''}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fit_y(ax, curves: dict, metric: str, x_max: float) -> None:
    """Scale the y axis to the points inside the x range."""
    ys = [p[metric] for pts in curves.values() for p in pts
          if p.get(metric) is not None and p.get("bpp") is not None and p["bpp"] <= x_max]
    if ys and max(ys) > min(ys):
        pad = 0.05 * (max(ys) - min(ys))
        ax.set_ylim(min(ys) - pad, max(ys) + pad)
