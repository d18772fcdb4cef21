"""The one-pass encoder (tuning.light): what the default encode reads of a photo."""

from __future__ import annotations

import numpy as np
from PIL import Image

import cgdm_codec
from cgdm_codec import runtime
from cgdm_codec.tuning.effort import SYNTAX_WINDOWS


def test_one_pass_encodes_read_a_spread_of_syntax_windows(monkeypatch):
    seen = []
    values = runtime.OrtSyntaxGenerator.values

    def spy(self, x01, x_tilde01, most=None):
        seen.append(most)
        return values(self, x01, x_tilde01, most)

    monkeypatch.setattr(runtime.OrtSyntaxGenerator, "values", spy)
    rgb = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    for effort in ("fast", "default"):
        cgdm_codec.encode(Image.fromarray(rgb), 3, effort=effort, runtime="onnx")
    assert seen == [SYNTAX_WINDOWS, SYNTAX_WINDOWS]
