"""The quality measures' numpy and torch forms agree (``cgdm_codec.quality``), the numpy forms
need no torch, and the encoder's objective is the generation's own.

Tolerances: the two forms compute in float32 with the same order of operations but
different kernels (shifted-slice sums against conv2d), so they agree to float32 rounding:
MEASURE_TOL (absolute, on values of order 1) for each measure, band statistics to rtol
1e-5 / atol 1e-6, and the objective to OBJECTIVE_RTOL relative. The float32 forms of
HaarPSI are held to the float64 metric within 2e-5.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cgdm_codec.quality import bands, haar, msssim
from cgdm_codec.quality.objective import Objective
from cgdm_codec.weights import weights_dir
from conftest import textured

MEASURE_TOL = 2e-5
OBJECTIVE_RTOL = 1e-4
ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"


def _unit(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> float32 (1, 3, H, W) in [0, 1]."""
    return rgb.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, decode, original) float32 batches: random images (sizes down to below the
    MS-SSIM window and the pyramid's 4 px) and real ones (the example card, golden decodes)."""
    rng = np.random.default_rng(7)
    out = []
    for h, w in ((96, 130), (40, 23), (7, 9), (3, 5)):
        a = rng.random((2, 3, h, w), dtype=np.float32)
        b = np.clip(a + np.float32(0.1) * rng.standard_normal(a.shape, dtype=np.float32), 0, 1)
        out.append((f"random {h}x{w}", b, a))
    card = _rgb(ROOT / "examples" / "card.png")
    noisy = np.clip(card + rng.normal(0, 10, card.shape), 0, 255).astype(np.uint8)
    out.append(("card + noise", _unit(noisy), _unit(card)))
    blurred = np.asarray(Image.fromarray(card).reduce(4).resize(card.shape[1::-1], Image.BILINEAR))
    out.append(("card blurred", _unit(blurred), _unit(card)))
    out.append(("golden decodes", _unit(_rgb(GOLDEN / "av1-cgdm5-q3.full.png")),
                _unit(_rgb(GOLDEN / "av1-cgdm4-q3.full.png"))))
    out.append(("golden full/base", _unit(_rgb(GOLDEN / "hyperprior-fitted-q2.full.png")),
                _unit(_rgb(GOLDEN / "hyperprior-fitted-q2.base.png"))))
    return out


PAIRS = _pairs()
IDS = [name for name, _, _ in PAIRS]


@pytest.mark.torch
@pytest.mark.parametrize("name, a, b", PAIRS, ids=IDS)
def test_numpy_and_torch_measures_agree(name, a, b):
    import torch

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    for numpy_form, torch_form in ((msssim.ms_ssim_numpy, msssim.ms_ssim_torch),
                                   (bands.band_energy_numpy, bands.band_energy_torch),
                                   (haar.haarpsi_numpy, haar.haarpsi_torch)):
        got, want = numpy_form(a, b), torch_form(ta, tb).numpy()
        assert got.shape == want.shape == (a.shape[0],)
        np.testing.assert_allclose(got, want, rtol=0, atol=MEASURE_TOL, err_msg=f"{numpy_form.__name__}, {name}")
    for got, want in zip(bands.laplacian_bands_numpy(a, 4), bands.laplacian_bands_torch(ta, 4), strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(bands.band_means_numpy(a * 2 - 1, b * 2 - 1),
                               bands.band_means_torch(ta * 2 - 1, tb * 2 - 1).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("name, a, b", PAIRS, ids=IDS)
def test_the_objectives_numpy_form_is_its_torch_form(name, a, b):
    import torch

    for objective in (Objective(), Objective(lambda_h=0.5), Objective(lambda_d=0.5, lambda_p=1.0, lambda_f=0.2)):
        for bpp in (0.0, 0.01):
            want = float(objective.torch(torch.from_numpy(a), torch.from_numpy(b), bpp))
            got = objective.numpy(a, b, bpp)
            assert abs(got - want) <= OBJECTIVE_RTOL * max(1.0, abs(want)), (name, objective, bpp)
            assert objective(a, b, bpp) == got  # calling it picks the form by the input's type
    assert Objective(lambda_h=0.5).numpy(a, b, 0.0) > Objective().numpy(a, b, 0.0)


@pytest.mark.torch
def test_numpy_haarpsi_is_the_evaluation_metric():
    """The float32 HaarPSI of the encoder and the training loss against the float64 metric."""
    rng = np.random.default_rng(4)
    for h, w in ((96, 130), (41, 23), (9, 7)):
        ref = textured(h, w, seed=h)
        noisy = np.clip(ref + rng.normal(0, 12, ref.shape), 0, 255).astype(np.uint8)
        for other in (noisy, ref):
            got = haar.haarpsi_numpy(_unit(other), _unit(ref))
            assert abs(float(got[0]) - haar.haarpsi(other, ref)) < 2e-5


def test_the_encoder_scores_with_the_generations_own_objective():
    """A generation trained with a HaarPSI term is scored with it; older ones as before."""
    newest = json.loads((weights_dir() / "cgdm-av1-4.json").read_text())
    assert Objective.of(newest) == Objective(lambda_d=1.0, lambda_p=0.3, lambda_f=0.05, lambda_h=0.5)
    older = json.loads((weights_dir() / "cgdm-av1-3.json").read_text())
    assert Objective.of(older) == Objective()


def test_numpy_forms_need_no_torch():
    """The torch-free encoder's objective and the runtime's band statistics run with torch
    unimportable, as on the light install."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from cgdm_codec.quality.objective import Objective\n"
            "from cgdm_codec.runtime import band_means\n"
            "a = np.random.default_rng(0).random((1, 3, 40, 50), dtype=np.float32)\n"
            "v = Objective(lambda_h=0.5).numpy(a, a[..., ::-1, :], 0.01)\n"
            "print(band_means(a, a).shape, v > 0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(1, 36) True"
