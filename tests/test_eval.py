"""`cgdm eval`: BD-rate math, the runner end to end on tiny images, resume, reports, errors."""

import csv
import json
import math
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from cgdm_codec.cli import main
from cgdm_codec.evaluation import EvalError
from cgdm_codec.evaluation.bdrate import bd_rate, overlap
from cgdm_codec.evaluation.memory import PeakMemory
from cgdm_codec.evaluation.progress import Progress
from cgdm_codec.evaluation.runner import EvalConfig, check_ablations, encode_options, run_eval
from cgdm_codec.evaluation.summary import bd_pairs, complete_images, mean_curves
from conftest import textured

RATES = [0.1, 0.2, 0.4, 0.8]
PSNR = [28.0, 30.5, 32.0, 34.0]


# ------------------------------------------------------------------------------ BD-rate


def test_bd_rate_constant_ratio():
    """10 % more bits at every quality is +10 %; the other way round it is -1/11 = -9.09 %."""
    more = [r * 1.1 for r in RATES]
    assert bd_rate(RATES, PSNR, more, PSNR) == pytest.approx(10.0, abs=1e-9)
    assert bd_rate(more, PSNR, RATES, PSNR) == pytest.approx(-100 / 11, abs=1e-9)
    assert bd_rate(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-12)


def test_bd_rate_lower_is_better_and_partial_overlap():
    lpips = [0.5, 0.35, 0.2, 0.1]
    half = [r * 0.5 for r in RATES]
    assert bd_rate(RATES, lpips, half, lpips, higher_is_better=False) == pytest.approx(-50.0)
    # a test curve over only the upper part of the anchor's range: integrated over the overlap
    q = [30.0, 32.0, 34.0, 36.0]
    anchor = [10 ** (0.1 * x - 3) for x in q]
    assert bd_rate(anchor, q, [10 ** (0.1 * x - 3.1) for x in q[1:]], q[1:]) == pytest.approx(
        (10 ** -0.1 - 1) * 100)
    assert overlap(PSNR, PSNR[1:]) == 1.0 and overlap(PSNR[2:], PSNR) == pytest.approx(2 / 6)


def test_bd_rate_linear_log_rate_by_hand():
    """log10 R = 0.1 * PSNR - 3 for the anchor; the test reaches each PSNR with 1 dB less
    rate-equivalent, i.e. log10 R lower by 0.1 everywhere: 10^-0.1 - 1 = -20.57 %."""
    q = [30.0, 32.0, 34.0, 36.0]
    anchor = [10 ** (0.1 * x - 3) for x in q]
    test = [10 ** (0.1 * x - 3.1) for x in q]
    assert bd_rate(anchor, q, test, q) == pytest.approx((10 ** -0.1 - 1) * 100)


@pytest.mark.parametrize("rates, quality", [([0.1], [30.0]), ([0.1, 0.2], [31.0, 30.0]),
                                            ([0.1, 0.2], [30.0, float("nan")]), ([0.0, 0.2], [30.0, 31.0])])
def test_bd_rate_undefined(rates, quality):
    assert bd_rate(RATES, PSNR, rates, quality) is None


def test_bd_rate_no_overlap():
    assert bd_rate(RATES, PSNR, RATES, [40.0, 41.0, 42.0, 43.0]) is None


# ------------------------------------------------------------------------------ helpers


def test_encode_options_and_ablations():
    assert encode_options(None, {"quality"}) == {}
    assert encode_options(None, {"effort"}) == {"effort": "fast"}
    assert encode_options("max", {"effort"}) == {"effort": "max"}
    with pytest.raises(EvalError):
        encode_options("max", {"quality"})
    check_ablations(("base-only",), set())
    with pytest.raises(EvalError, match="finetune"):
        check_ablations(("no-finetune",), {"quality"})
    with pytest.raises(EvalError):
        check_ablations(("nope",), set())


def test_progress_eta_uses_each_kinds_mean():
    p = Progress({"cgdm": 3, "anchor": 3}, quiet=True)
    assert p.eta() is None
    p.step("cgdm", 10.0)
    p.step("anchor", 1.0)
    p.step("anchor", None)  # skipped on resume: done, but not a timing
    assert p.eta() == pytest.approx(2 * 10.0 + 1 * 1.0)
    assert "3/6" in p.line()


def test_peak_memory_sees_a_large_allocation():
    import numpy as np

    with PeakMemory() as small:
        pass
    with PeakMemory() as big:
        a = np.ones(40 * 2**20 // 8)
        a[::512] = 2.0
        del a
    if small.rss_mib is None:
        pytest.skip("this OS cannot reset the RSS high-water mark")
    assert big.rss_mib > small.rss_mib + 30


def test_means_use_only_complete_images():
    rows = [{"image": i, "codec": c, "setting": s, "bpp": b, "psnr": p}
            for i, c, s, b, p in [("a", "cgdm", 1, 0.2, 30), ("a", "jpeg", 50, 0.4, 31),
                                  ("b", "cgdm", 1, 0.4, 32), ("b", "jpeg", 50, 0.6, 33),
                                  ("c", "cgdm", 1, 9.0, 99)]]
    assert complete_images(rows) == (["a", "b"], ["c"])
    curves = mean_curves(rows)
    assert curves["cgdm"] == [{"setting": 1, "n": 2, "bpp": pytest.approx(0.3), "psnr": 31}]
    assert list(curves) == ["cgdm", "jpeg"]
    assert bd_pairs(["jpeg", "cgdm:base-only", "cgdm"]) == [
        ("cgdm", "jpeg"), ("cgdm:base-only", "jpeg"), ("cgdm", "cgdm:base-only")]


# ---------------------------------------------------------------------------- end to end

SWEEPS = {"jpeg": (10, 60), "webp": (10, 60), "avif": (20, 60)}


@pytest.fixture(scope="module", autouse=True)
def base_codec_only():
    """The runner's logic does not depend on the diffusion stage, which costs seconds per
    tiny decode on a CPU: these tests write base-only files (the CLI tests cover diffusion)."""
    import torch

    threads = torch.get_num_threads()  # the runner sets its own (threads=1 below)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CGDM_DIFFUSION_WEIGHTS", "none")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval-images")
    Image.fromarray(textured(48, 64, 0)).save(d / "a.png")
    Image.fromarray(textured(56, 72, 1)).save(d / "b.png")
    (d / "notes.txt").write_text("not an image")
    return d


def config(images, out, **kw) -> EvalConfig:
    base = dict(images=images, outdir=out, levels=(1, 4), sweeps=SWEEPS, quiet=True, networks=False,
                threads=1)
    return EvalConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def evaluated(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-out") / "run"
    result = run_eval(config(images, out, keep_files=True))
    return out, result


def rows_of(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_runner_writes_every_row_from_real_files(evaluated):
    out, result = evaluated
    rows = rows_of(out)
    anchors = sorted({r["codec"] for r in rows} - {"cgdm", "cgdm:base-only"})
    n_anchor = sum(len(SWEEPS[a]) for a in anchors)
    assert len(rows) == 2 * (2 * 2 + n_anchor)
    assert {"jpeg", "webp"} <= set(anchors)
    for r in rows:
        ext = "cgdm" if r["codec"].startswith("cgdm") else {"jpeg": "jpg"}.get(r["codec"], r["codec"])
        folder = "cgdm" if r["codec"].startswith("cgdm") else r["codec"]
        f = out / "files" / folder / f"{r['image']}.{r['setting']}.{ext}"
        assert f.stat().st_size == r["bytes"]
        assert r["bpp"] == pytest.approx(8 * r["bytes"] / (r["width"] * r["height"]))
        assert 0 < r["ms_ssim"] <= 1 and 0 < r["haarpsi"] <= 1 and math.isfinite(r["psnr"])
        assert r["vif"] is not None and r["encode_s"] >= 0 and r["decode_s_per_mp"] > 0
    by = {(r["image"], r["codec"], r["setting"]): r for r in rows}
    full, base = by[("a.png", "cgdm", 4)], by[("a.png", "cgdm:base-only", 4)]
    assert full["bytes"] == base["bytes"]  # the ablation decodes the same file
    assert by[("a.png", "cgdm", 1)]["bytes"] < full["bytes"]
    assert result["images_complete"] == 2


def test_reports_exist_and_parse(evaluated):
    out, _ = evaluated
    with (out / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows_of(out)) and "psnr" in table[0]
    s = json.loads((out / "summary.json").read_text())
    assert [p["setting"] for p in s["curves"]["cgdm"]] == [1, 4]
    assert s["curves"]["cgdm"][0]["n"] == 2
    pairs = {(e["test"], e["anchor"]) for e in s["bd_rates"]}
    assert ("cgdm", "jpeg") in pairs and ("cgdm", "cgdm:base-only") in pairs
    md = (out / "results.md").read_text()
    assert "| cgdm | 1 | 2 |" in md and "## BD-rate" in md and "| cgdm | jpeg |" in md
    with Image.open(out / "rd.png") as im:
        assert im.format == "PNG" and im.width > 300


def test_resume_skips_finished_rows_and_repairs_a_torn_line(evaluated, images):
    out, _ = evaluated
    before = rows_of(out)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    # drop the last image's anchor rows, and leave half a line as a crash would
    kept = lines[:-3]
    (out / "results.jsonl").write_text("".join(kept) + lines[-3][: len(lines[-3]) // 2])
    run_eval(config(images, out))
    after = rows_of(out)
    assert len(after) == len(before)
    assert after[: len(kept)] == before[: len(kept)]  # finished rows untouched, not redone
    keys = [(r["image"], r["codec"], r["setting"]) for r in after]
    assert len(set(keys)) == len(keys) and set(keys) == {(r["image"], r["codec"], r["setting"]) for r in before}


def test_resume_refuses_other_settings(evaluated, images):
    out, _ = evaluated
    with pytest.raises(EvalError, match="downscale"):
        run_eval(config(images, out, downscale=0.5))


def test_network_metrics_skipped_with_a_note(images, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    out = tmp_path / "run"
    result = run_eval(config(images, out, levels=(2,), anchors=False, ablations=(), networks=True, limit=1))
    assert "lpips" not in result["metrics"]
    assert "LPIPS skipped" in (out / "results.md").read_text()
    assert {r["codec"] for r in rows_of(out)} == {"cgdm"} and len(rows_of(out)) == 1


# --------------------------------------------------------------------------------- CLI


def _err(res) -> str:
    return res.stderr.strip()


@pytest.mark.parametrize("case", ["empty", "missing", "file"])
def test_cli_bad_folder_is_one_line(tmp_path, case):
    folder = tmp_path / "imgs"
    if case == "empty":
        folder.mkdir()
    elif case == "file":
        folder.write_text("x")
    res = CliRunner().invoke(main, ["eval", str(folder), "--out", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code in (1, 2)
    lines = _err(res).splitlines()
    if res.exit_code == 1:
        assert len(lines) == 1 and lines[0].startswith("cgdm: error:")
    assert not (tmp_path / "o" / "results.jsonl").exists()


@pytest.mark.parametrize("q", ["7", "0", "x", "1,,3"])
def test_cli_bad_quality_is_usage_error(images, tmp_path, q):
    res = CliRunner().invoke(main, ["eval", str(images), "-q", q, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "quality level" in res.stderr
    assert not (tmp_path / "o").exists()


def test_unreadable_image_is_skipped_with_a_note(images, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes((images / "a.png").read_bytes())
    (folder / "broken.png").write_bytes(b"not a png at all")
    out = tmp_path / "run"
    result = run_eval(config(folder, out, levels=(2,), anchors=False, ablations=()))
    assert {r["image"] for r in rows_of(out)} == {"a.png"}
    assert any("broken.png skipped" in n for n in result["notes"])
    assert "broken.png skipped" in (out / "results.md").read_text()


def test_cli_runs_and_prints_progress(images, tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["eval", str(images), "-q", "2", "--limit", "1", "--no-anchors",
                                    "--ablation", "none", "--threads", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "1/1" in res.stderr and "ETA" in res.stderr and "wrote" in res.stderr
    s = json.loads((out / "summary.json").read_text())
    assert list(s["curves"]) == ["cgdm"]
    assert s["command"].startswith("cgdm eval ") and "-q 2" in s["command"] and "--limit 1" in s["command"]
    assert sorted(p.name for p in out.iterdir()) == [
        "rd.png", "results.csv", "results.jsonl", "results.md", "run.json", "summary.json"]


def test_eval_help_does_not_import_torch():
    code = ("import sys; from cgdm_codec.cli import main\n"
            "try:\n    main(['eval', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('torch', 'numpy', 'piq') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_anchor_bytes_decode_back():
    from cgdm_codec.evaluation.anchors import JPEG, available_anchors
    from cgdm_codec.evaluation.images import decode_pil_bytes

    img = Image.fromarray(textured(32, 40))
    data = JPEG.encode(img, 50)
    assert decode_pil_bytes(data).shape == (32, 40, 3)
    codecs, notes = available_anchors(["jpeg", "webp", "avif"])
    assert len(codecs) + len(notes) == 3 and codecs[0].name == "jpeg"


def test_our_haarpsi_agrees_with_piq():
    """Cross-check: the project's HaarPSI (used by cgdm eval) and piq's on the same pair."""
    import piq
    import torch

    from cgdm_codec import metrics

    ref, out = textured(64, 96, 0), textured(64, 96, 3)

    def t(a):
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].double() / 255

    ours = metrics.haarpsi(ref, out)
    theirs = float(piq.haarpsi(t(out), t(ref), data_range=1.0))
    assert 0.3 < ours < 0.99 and ours == pytest.approx(theirs, abs=1e-3)
