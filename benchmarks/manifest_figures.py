"""Copy measured per-level means from an rd_base.py result into a weights manifest.

``python benchmarks/manifest_figures.py cgdm_codec/weights/base-hp1.json results/sunhays80/rd-….json cgdm-base``

The manifest's ``validation`` field then says what was measured, on which images, with
which command; the weights file (and so its sha256) is untouched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(manifest: str, result: str, *codecs: str) -> None:
    m, r = json.loads(Path(manifest).read_text()), json.loads(Path(result).read_text())
    entry = {
        "command": r["command"], "date": r["date"], "images": r["images"],
        "downscale": r["downscale"], "result_file": result,
        "means": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                  for row in r["means"] if row["codec"] in codecs],
    }
    m.setdefault("validation", {})
    if not isinstance(m["validation"], dict):
        m["validation"] = {}
    m["validation"][Path(result).stem] = entry
    Path(manifest).write_text(json.dumps(m, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
