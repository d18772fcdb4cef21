"""What every whole-process benchmark does before it times anything.

``write_bytecode``: an installed copy of the package has its bytecode (``pip install``
writes it), but an editable checkout in a shell with PYTHONDONTWRITEBYTECODE set (this
project's sandboxes have it) recompiles every changed module in every run: 35-45 ms that
no user pays, enough to move ``cgdm info`` over its 0.1 s aim. Imported by the scripts
beside it (``python benchmarks/speed.py`` puts this folder on the path).
"""

from __future__ import annotations

import compileall
from pathlib import Path


def write_bytecode() -> str:
    """Compile the imported ``cgdm_codec`` package's modules; a line saying so, for the record."""
    import cgdm_codec

    package = Path(cgdm_codec.__file__).parent
    ok = compileall.compile_dir(str(package), quiet=1)
    return f"{package} compiled before timing" + ("" if ok else " (some modules failed)")
