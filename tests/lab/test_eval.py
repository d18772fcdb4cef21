"""`cgdm eval`: BD-rate math, the runner end to end on tiny images, resume, reports, errors."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cgdm_codec.cli import main
from cgdm_lab.evaluation import EvalError
from cgdm_lab.evaluation.bdrate import bd_rate, overlap
from cgdm_lab.evaluation.memory import PeakMemory
from cgdm_lab.evaluation.progress import Progress
from cgdm_lab.evaluation.runner import EvalConfig, check_ablations, encode_options, run_eval
from cgdm_lab.evaluation.summary import bd_pairs, complete_images, mean_curves
from conftest import textured

pytestmark = pytest.mark.torch  # cgdm eval needs the eval extra, which needs torch

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
    """In a fresh process: in this one, earlier tests leave freed but resident heap behind,
    which a 40 MiB allocation may reuse without raising the resident set at all."""
    import subprocess
    import sys

    code = ("import json, numpy as np\n"
            "from cgdm_lab.evaluation.memory import PeakMemory\n"
            "with PeakMemory() as small:\n    pass\n"
            "with PeakMemory() as big:\n"
            "    a = np.ones(40 * 2**20 // 8)\n    a[::512] = 2.0\n    del a\n"
            "print(json.dumps([small.rss_mib, big.rss_mib]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    small, big = json.loads(out.stdout)
    if small is None:
        pytest.skip("this OS cannot reset the RSS high-water mark")
    assert big > small + 30


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

SWEEPS = {"jpeg": (10, 60), "webp": (10, 60), "avif": (20, 60), "avif-s2": (20, 60), "jxl": (20, 60)}


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
        ext = "cgdm" if r["codec"].startswith("cgdm") else {"jpeg": "jpg", "avif-s2": "avif"}.get(r["codec"], r["codec"])
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


def test_the_report_counts_decodes_that_ran_the_stage(evaluated):
    """Each cgdm row says whether its decode ran the diffusion stage (the file has it, and the
    ablation did not skip it); the report counts them per codec."""
    out, _ = evaluated
    rows = rows_of(out)
    cg = [r for r in rows if r["codec"] == "cgdm"]
    from cgdm_codec.container import parse

    for r in cg:  # the file on disk says whether it carries the stage
        coded = parse((out / "files" / "cgdm" / f"{r['image']}.{r['setting']}.cgdm").read_bytes())
        assert r["stage"] is coded.diffusion
    assert not any(r["stage"] for r in rows if r["codec"] == "cgdm:base-only")
    assert not any("stage" in r for r in rows if not r["codec"].startswith("cgdm"))
    s = json.loads((out / "summary.json").read_text())
    assert s["diffusion_stage"]["cgdm"] == [sum(r["stage"] for r in cg), len(cg)]
    ran, total = s["diffusion_stage"]["cgdm"]
    assert f"- `cgdm`: the diffusion stage ran in {ran} of {total} decodes" in (out / "results.md").read_text()


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
    from cgdm_lab.evaluation.anchors import JPEG, available_anchors
    from cgdm_lab.evaluation.images import decode_pil_bytes

    img = Image.fromarray(textured(32, 40))
    data = JPEG.encode(img, 50)
    assert decode_pil_bytes(data).shape == (32, 40, 3)
    codecs, notes = available_anchors(["jpeg", "webp", "avif"])
    assert len(codecs) + len(notes) == 3 and codecs[0].name == "jpeg"


def test_our_haarpsi_agrees_with_piq():
    """Cross-check: the project's HaarPSI (used by cgdm eval) and piq's on the same pair."""
    import piq
    import torch

    from cgdm_codec import quality as metrics

    ref, out = textured(64, 96, 0), textured(64, 96, 3)

    def t(a):
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].double() / 255

    ours = metrics.haarpsi(ref, out)
    theirs = float(piq.haarpsi(t(out), t(ref), data_range=1.0))
    assert 0.3 < ours < 0.99 and ours == pytest.approx(theirs, abs=1e-3)


# ------------------------------------------------------------------------- the anchors


def test_default_anchors_names_speeds_and_sweeps():
    from cgdm_lab.evaluation.anchors import ALL, AVIF, AVIF_S2, avif_anchor, default_anchors

    assert [c.name for c in ALL] == ["jpeg", "webp", "avif", "avif-s2", "jxl"]
    assert dict(AVIF.options) == {"speed": 6, "subsampling": "4:2:0"}
    assert dict(AVIF_S2.options) == {"speed": 2, "subsampling": "4:2:0"}
    assert len(AVIF_S2.sweep) < len(AVIF.sweep)  # the slow speed runs a shorter sweep
    assert (min(AVIF_S2.sweep), max(AVIF_S2.sweep)) == (min(AVIF.sweep), max(AVIF.sweep))
    # the main AVIF anchor at another speed (e.g. that of cgdm's AV1 base): its own name
    names = [c.name for c in default_anchors(avif_speed=8)]
    assert names == ["jpeg", "webp", "avif-s8", "avif-s2", "jxl"]
    assert dict(default_anchors(8)[2].options)["speed"] == 8
    assert [c.name for c in default_anchors(avif_speed=2)] == ["jpeg", "webp", "avif-s2", "jxl"]
    assert avif_anchor(6) == AVIF and avif_anchor(2) == AVIF_S2
    assert avif_anchor(4, "avif-base").name == "avif-base"
    assert avif_anchor(1, sweep=(5, 50)).sweep == (5, 50)
    with pytest.raises(ValueError):
        avif_anchor(11)


class _SaveRecorder:
    """Stands in for a Pillow image: records what ClassicalCodec.encode asks it to save."""

    def __init__(self):
        self.calls = []

    def save(self, fp, fmt, **kwargs):
        self.calls.append((fmt, kwargs))
        fp.write(b"coded")


def test_avif_s2_encodes_at_speed_2():
    from cgdm_lab.evaluation.anchors import AVIF, AVIF_S2, avif_support
    from cgdm_lab.evaluation.images import decode_pil_bytes

    rec = _SaveRecorder()
    assert AVIF_S2.encode(rec, 30) == b"coded" and AVIF.encode(rec, 30) == b"coded"
    assert rec.calls == [("AVIF", {"quality": 30, "speed": 2, "subsampling": "4:2:0"}),
                         ("AVIF", {"quality": 30, "speed": 6, "subsampling": "4:2:0"})]
    if avif_support() is None:
        pytest.skip("no AVIF encoder in this Pillow")
    img = Image.fromarray(textured(32, 40))
    assert decode_pil_bytes(AVIF_S2.encode(img, 40)).shape == (32, 40, 3)


def test_missing_encoders_are_notes_one_per_format(monkeypatch):
    from cgdm_lab.evaluation import anchors

    monkeypatch.setattr(anchors, "avif_support", lambda: None)
    monkeypatch.setattr(anchors, "jxl_support", lambda: None)
    codecs, notes = anchors.available_anchors(anchors.default_anchors(8))
    assert [c.name for c in codecs] == ["jpeg", "webp"]
    assert len(notes) == 2
    assert notes[0].startswith("AVIF: no encoder") and notes[0].endswith("avif-s8, avif-s2 skipped")
    assert notes[1].startswith("JPEG XL: no encoder") and "pillow-jxl-plugin" in notes[1]
    # names and codecs both accepted, duplicates dropped
    monkeypatch.undo()
    codecs, _ = anchors.available_anchors(["jpeg", anchors.JPEG, anchors.avif_anchor(8)])
    assert [c.name for c in codecs][:1] == ["jpeg"] and len(codecs) <= 2


def test_jxl_anchor_round_trips_when_the_plugin_is_installed():
    from cgdm_lab.evaluation.anchors import JXL, jxl_support
    from cgdm_lab.evaluation.images import decode_pil_bytes

    rec = _SaveRecorder()
    JXL.encode(rec, 50)
    assert rec.calls == [("JXL", {"quality": 50, "effort": 7, "lossless_jpeg": False})]
    if jxl_support() is None:
        pytest.skip("no JPEG XL plugin (pip install pillow-jxl-plugin)")
    img = Image.fromarray(textured(32, 40))
    small, large = JXL.encode(img, 10), JXL.encode(img, 90)
    assert len(small) < len(large)
    out = decode_pil_bytes(large)
    assert out.shape == (32, 40, 3)
    assert abs(out.astype(int) - textured(32, 40).astype(int)).mean() < 8


def test_reports_and_plot_carry_the_extra_anchors(evaluated):
    from cgdm_lab.evaluation.anchors import avif_support
    from cgdm_lab.evaluation.plot import style_of

    out, result = evaluated
    if avif_support() is None:
        pytest.skip("no AVIF encoder in this Pillow")
    assert result["anchors"]["avif-s2"]["options"]["speed"] == 2
    assert result["anchors"]["avif"]["options"]["speed"] == 6
    assert result["anchors"]["avif-s2"]["format"] == "AVIF"
    assert {"avif", "avif-s2"} <= set(result["curves"])
    pairs = {(e["test"], e["anchor"]) for e in result["bd_rates"]}
    assert {("cgdm", "avif"), ("cgdm", "avif-s2"), ("cgdm:base-only", "avif-s2")} <= pairs
    md = (out / "results.md").read_text()
    assert "- anchor `avif-s2` (Pillow AVIF; speed=2, subsampling=4:2:0): quality 20, 60" in md
    assert "| cgdm | avif-s2 |" in md and "| avif-s2 | 20 | 2 |" in md
    styles = [style_of(c) for c in ("avif", "avif-s2", "jxl", "avif-s8", "jpeg")]
    assert len({(s["color"], s.get("ls", "-")) for s in styles}) == len(styles)


def test_runner_takes_the_main_avif_speed(images, tmp_path):
    from cgdm_lab.evaluation.anchors import avif_support

    if avif_support() is None:
        pytest.skip("no AVIF encoder in this Pillow")
    out = tmp_path / "run"
    result = run_eval(config(images, out, levels=(2,), ablations=(), limit=1, avif_speed=8,
                             sweeps={**SWEEPS, "avif-s8": (30,), "avif-s2": (30,)}))
    assert "avif" not in result["anchors"]
    assert result["anchors"]["avif-s8"]["options"]["speed"] == 8
    assert {r["codec"] for r in rows_of(out) if r["codec"].startswith("avif")} == {"avif-s8", "avif-s2"}


# ------------------------------------------------------------------------------ crops


def test_detail_box_finds_the_textured_patch_not_the_big_edge():
    import numpy as np

    from cgdm_lab.evaluation.crops import detail_box

    img = np.full((300, 400, 3), 128, np.uint8)
    img[:, 330:] = 255  # one big edge: a large plain variance, but little fine detail
    img[100:192, 200:292] = (np.indices((92, 92)).sum(0) % 2 * 255)[..., None]  # a checkerboard
    left, top, right, bottom = detail_box(img, 192)
    assert (right - left, bottom - top) == (192, 192)
    assert left <= 200 and right >= 292 and top <= 100 and bottom >= 192
    assert detail_box(img[:50, :60], 192) == (0, 0, 60, 50)  # smaller than the crop: all of it


def test_crop_grid_layout_crops_and_labels():
    import numpy as np

    from cgdm_lab.evaluation.crops import (BACKGROUND, GAP, PAD, codec_label, crop_grid,
                                             label_height)

    h, w = 240, 320
    ref = textured(h, w, 0)
    panels = [(ref, "original"), (textured(h, w, 1), codec_label("AVIF q40", 4321, w, h)),
              (textured(h, w, 2), codec_label("cgdm -q 3", 4400, w, h))]
    assert codec_label("AVIF q40", 4321, w, h) == "AVIF q40\n4,321 B, 0.450 bpp"
    box = (10, 20, 202, 212)
    grid = crop_grid([panels, panels], [box, None])
    strip = label_height([lab for _, lab in panels])
    assert strip > 2 * PAD + 10  # two lines of text
    assert grid.size == (3 * 192 + 4 * GAP, 2 * (192 + strip) + 3 * GAP)
    a = np.asarray(grid)
    # the first row's crops are the given window of each panel, pixel for pixel
    for j, (px, _) in enumerate(panels):
        x = GAP + j * (192 + GAP)
        assert np.array_equal(a[GAP:GAP + 192, x:x + 192], px[20:212, 10:202])
        label = a[GAP + 192:GAP + 192 + strip, x:x + 192]
        ink = (label.astype(int).sum(-1) < 3 * 128).sum()
        assert ink > 20, f"label of panel {j} is empty"
        assert (a[GAP + 192:GAP + 192 + strip, x + 150:x + 192] == BACKGROUND).all()  # short text
    # zoom enlarges without smoothing
    z = np.asarray(crop_grid([panels[:1]], [box], zoom=2))
    assert z.shape[1] == 2 * 192 + 2 * GAP
    assert np.array_equal(z[GAP:GAP + 384:2, GAP:GAP + 384:2], ref[20:212, 10:202])
    long = crop_grid([[(ref, "a label far wider than the one-hundred-and-ninety-two pixel crop")]], [box])
    assert long.width > 192 + 2 * GAP  # the cell widens: labels never run into the next crop
    with pytest.raises(ValueError):
        crop_grid([[(ref, "a"), (ref[:100], "b")]])
    with pytest.raises(ValueError):
        crop_grid([])


def test_eval_cli_passes_the_avif_speed_and_records_it():
    from cgdm_codec.cli import _eval_command, main

    words = _eval_command(dict(folder="imgs", levels=(3,), outdir="o", downscale=1.0, limit=None,
                               anchors=True, avif_speed=8, ablations=("base-only",), effort=None,
                               device="auto", threads=None))
    assert "--avif-speed 8" in words
    res = CliRunner().invoke(main, ["eval", "nope", "-o", "o", "--avif-speed", "11"])
    assert res.exit_code == 2


def test_identity_names_the_base_and_weights_the_encodes_use(images, tmp_path, monkeypatch):
    """The run's identity records the base the cgdm rows were encoded with, and the weights id
    of that base's bundle (an AV1 run once recorded the learned base's weights)."""
    from cgdm_codec.container import parse
    from cgdm_codec.generations import load_bundle

    monkeypatch.setenv("CGDM_BASE", "av1")
    out = tmp_path / "run"
    run_eval(config(images, out, levels=(2,), anchors=False, ablations=(), limit=1, keep_files=True))
    run = json.loads((out / "run.json").read_text())
    assert run["base"] == "av1"
    assert run["weights"] == load_bundle("av1", diffusion=False).weights_id(False).hex()
    assert run["weights"] != load_bundle("hyperprior", diffusion=False).weights_id(False).hex()
    (coded,) = (out / "files" / "cgdm").iterdir()
    assert parse(coded.read_bytes()).base_codec == 2  # the rows really are AV1 files
    monkeypatch.setenv("CGDM_BASE", "hyperprior")
    with pytest.raises(EvalError, match="base"):
        run_eval(config(images, out, levels=(2,), anchors=False, ablations=(), limit=1))


def test_anchor_choice_runs_only_the_named_anchors():
    from cgdm_lab.evaluation.anchors import default_anchors
    from cgdm_lab.evaluation.runner import pick_anchors

    every = default_anchors(3)
    assert pick_anchors(every, ()) == every
    assert [a.name for a in pick_anchors(every, ("avif-s2",))] == ["avif-s2"]
    with pytest.raises(ValueError, match="unknown anchor avif-s9; choose from"):
        pick_anchors(every, ("avif-s9",))


def test_the_report_has_an_artefact_table_when_rows_have_the_measures():
    from cgdm_lab.evaluation.report import artefact_table

    curves = {"cgdm": [{"setting": 1, "period2": 1.1, "period2_ref": 0.8, "edge_overshoot": 2.0, "flat_noise": 0.9}]}
    text = "\n".join(artefact_table(curves))
    assert "## Artefacts" in text and "| cgdm | 1 | 1.100 | 0.800 | 2.000 | 0.900 |" in text
    assert artefact_table({"cgdm": [{"setting": 1, "psnr": 30.0}]}) == []


def test_realism_curves_decode_the_same_file_and_one_with_a_texture_map(images, tmp_path, monkeypatch):
    """--ablation realism decodes cgdm's own file at realism 1; realism-map codes its own file
    with a texture map (a few bytes more) and decodes it at realism 1: both get more fine
    detail than the fidelity decode, and their rows carry the artefact measures."""
    monkeypatch.setenv("CGDM_BASE", "av1")
    monkeypatch.delenv("CGDM_DIFFUSION_WEIGHTS", raising=False)
    photo = tmp_path / "photo"
    photo.mkdir()
    rgb = textured(96, 128, 3).astype(int) + np.random.default_rng(3).integers(-25, 26, (96, 128, 1))
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(photo / "grain.png")
    out = tmp_path / "run"
    run_eval(config(photo, out, levels=(2,), anchors=False, ablations=("realism", "realism-map"),
                    effort="default"))
    rows = {r["codec"]: r for r in rows_of(out)}
    assert set(rows) == {"cgdm", "cgdm:realism", "cgdm:realism-map"}
    assert all(r["stage"] for r in rows.values())  # the encoder kept the diffusion stage
    assert rows["cgdm:realism"]["bpp"] == rows["cgdm"]["bpp"] < rows["cgdm:realism-map"]["bpp"]
    assert rows["cgdm:realism"]["psnr"] < rows["cgdm"]["psnr"]
