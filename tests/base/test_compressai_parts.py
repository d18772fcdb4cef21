"""``models.compressai_parts`` registers CompressAI's package without its slow ``__init__``;
user code that later imports CompressAI in the same process must still get all of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch  # compressai comes with the torch extra

REPO = Path(__file__).resolve().parents[2]

CODE = """
import json, sys
from cgdm_codec.models import compressai_parts as parts
parts.EntropyBottleneck(4)  # the codec's use: the stand-in coder queries answer
light = not any(m in sys.modules for m in ('compressai.zoo', 'compressai.models', 'compressai.version'))
import compressai  # user code, later in the same process
from compressai.zoo import bmshj2018_factorized
import compressai.models
print(json.dumps({
    "light": light,
    "version": isinstance(compressai.__version__, str),
    "set_entropy_coder": callable(compressai.set_entropy_coder),
    "coders": compressai.available_entropy_coders(),
    "coder": compressai.get_entropy_coder(),
    "same_class": compressai.entropy_models.EntropyBottleneck is parts.EntropyBottleneck,
    "zoo": callable(bmshj2018_factorized) and hasattr(compressai, "zoo"),
    "after": type(parts.EntropyBottleneck(4)).__name__,
}))
"""


def test_a_later_import_compressai_gets_the_whole_package():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env,
                         cwd=REPO)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"light": True, "version": True, "set_entropy_coder": True, "coders": got["coders"],
                   "coder": "ans", "same_class": True, "zoo": True, "after": "EntropyBottleneck"}
    assert "ans" in got["coders"]
