"""The browser viewer (``cgdm web``): its files, and its decode in headless Chromium.

The browser tests need Debian's ``chromium`` (``.ci/run`` installs it) and skip, saying so,
without it. One Chromium run (module fixture) decodes every case with the page's decoder and
opens each in the page itself; the tests then compare what came back with the Python reader:

* every golden AV1 file's picture equals ``cgdm decode --base-only`` within
  ``AV1_TOLERANCE`` levels (measured with Chromium 156: 0, the same pixels; the bound leaves
  one level to another build's YUV->RGB path), and the WebP-lossless ones exactly;
* grayscale and alpha files: gray stays gray, alpha is exact;
* hostile files are one error line, the Python reader's own message, and never a hang;
* the full decode (diffusion.js, ONNX Runtime Web): every golden AV1 file with the
  diffusion stage, of every generation, equals
  ``pipeline.decode_file(f, DecodeSettings(device="cpu"))`` within the golden tolerance
  (mean 0.5, max 8 levels; measured: 0 for cgdm-av1-5 and cgdm-av1-4, at most 1 level on a
  few pixels of the five-step files), in the decoder and in the page; the syntax decoder
  equals constriction's on random vectors, and the seeded noise equals ``sampling.noise``
  bit for bit.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dataclasses

import cgdm_codec
from cgdm_codec.container import encode_varint, parse, serialize
from cgdm_codec.errors import FormatError
from cgdm_codec.options import DecodeSettings
from cgdm_codec.webpage import PAGE_FILES, RUNTIME_FILES, WEIGHTS_JS, av1_weights, write_page

import web_harness

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CGDM = [sys.executable, "-m", "cgdm_codec.cli"]
#: Largest difference, in levels of 8 bits, allowed between the browser's picture of an AV1
#: file and the Python base-only decode: the AV1 decode is exact in every conforming decoder,
#: the YUV->RGB conversion is the browser's own. Measured: 0 on every case.
AV1_TOLERANCE = 1
#: The full decode against the Python decode: the golden tolerance of tests/base/test_av1.py.
FULL_MEAN, FULL_MAX = 0.5, 8
#: Time for one full decode in the harness (the first loads the runtime and the weights).
FULL_LIMIT_MS = 120_000


def golden_files() -> list[Path]:
    """The golden files the browser decodes: AV1 (base codec 2) and WebP lossless (3)."""
    return [p for p in sorted(GOLDEN.glob("*.cgdm")) if parse(p.read_bytes()).base_codec in (2, 3)]


def _encoded(mode: str) -> bytes:
    """A small AV1 file of a colour mode the golden files lack (L, RGBA, LA)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:40, 0:56]
    rgb = np.stack([(x * 4) % 256, (y * 6) % 256, (x + y) * 2 % 256], -1).astype(np.uint8)
    im = Image.fromarray(rgb, "RGB")
    if mode.startswith("L"):
        im = im.convert("L")
    if mode.endswith("A"):
        im.putalpha(Image.fromarray(rng.integers(0, 256, (40, 56), dtype=np.uint8), "L"))
    return cgdm_codec.encode(im, quality=3, base="av1", base_only=True)


def _with_metadata() -> bytes:
    """An AV1 file with a metadata section (an ICC profile and EXIF), which the page checks."""
    from PIL import ImageCms

    im = Image.fromarray(np.full((24, 32, 3), 90, np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x010F] = "cgdm test"  # Make
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    im.save(buf, "PNG", icc_profile=icc, exif=exif.tobytes())
    data = cgdm_codec.encode(buf.getvalue(), quality=3, base="av1", base_only=True)
    assert parse(data).metadata, "the file should carry metadata"
    return data


def diffusion_golden_files() -> list[Path]:
    """The golden AV1 files with the diffusion stage: the page's full decode, every generation."""
    return [p for p in golden_files() if parse(p.read_bytes()).base_codec == 2 and parse(p.read_bytes()).diffusion]


def _bad_syntax() -> bytes:
    """A cgdm-av1-5 file whose syntax section no encoder wrote, under a valid checksum:
    the first of a seeded run of random sections that constriction refuses."""
    from cgdm_codec.entropy_models.syntax_coding import decode_symbols
    from cgdm_codec.runtime import prior_table

    good = parse((GOLDEN / "av1-cgdm5-q3.cgdm").read_bytes())
    table = prior_table(av1_weights()[-1])
    rng = np.random.default_rng(3)
    while True:
        data = bytes(rng.integers(0, 256, int(rng.integers(1, 20)), dtype=np.uint8))
        try:
            decode_symbols(table, data)
        except Exception:  # noqa: BLE001 (constriction raises AssertionError)
            return serialize(dataclasses.replace(good, syntax=data))


def _extensions_file(kind: int = 1, declared: int | None = None, diffusion: bool = True) -> bytes:
    """A file with an extensions section of one record, under a valid checksum: its kind,
    its declared length (past the end of the section if larger than the record), and a
    base-only file (no diffusion stage) when ``diffusion`` is False."""
    record = bytes([kind]) + encode_varint(4 if declared is None else declared) + b"\x01\x02\x03\x04"
    if diffusion:
        data = (GOLDEN / "av1-cgdm5-q3-map.cgdm").read_bytes()
        section = parse(data).extensions
        old = bytes([section[0][0]]) + encode_varint(len(section[0][1])) + section[0][1]
        at = data.index(encode_varint(len(old)) + old)
        body = data[:at] + encode_varint(len(record)) + record + data[at + len(encode_varint(len(old))) + len(old):-4]
        return _with_crc(body)
    data = (GOLDEN / "av1-q3.cgdm").read_bytes()
    f = parse(data)
    at = 10 + len(encode_varint(f.width)) + len(encode_varint(f.height)) + len(encode_varint(f.seed))
    body = bytearray(data[:at] + encode_varint(len(record)) + record + data[at:-4])
    body[4] |= 0x80
    return _with_crc(bytes(body))


def _with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def hostile_files() -> dict[str, bytes]:
    """Damaged and foreign files, derived from a golden AV1 file."""
    good = (GOLDEN / "av1-q3.cgdm").read_bytes()
    flipped = bytearray(good)
    flipped[40] ^= 0x10
    # a valid container around an AV1 payload cut inside its frame OBU: the checksum passes,
    # the base stream does not
    cut = _with_crc(good[:-4][:-30])
    return {
        "empty.cgdm": b"",
        "magic.cgdm": b"PNG" + good[3:],
        "short.cgdm": good[:12],
        "truncated.cgdm": good[:-40],
        "flipped.cgdm": bytes(flipped),
        "trailing.cgdm": good + b"\x00\x01",
        "version.cgdm": good[:3] + b"\x02" + good[4:],
        "codec.cgdm": _with_crc(good[:5] + b"\x09" + good[6:-4]),
        "cut-av1.cgdm": cut,
        "random.cgdm": bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)),
        "metadata.cgdm": _bad_metadata(),
        "ext-kind.cgdm": _extensions_file(kind=2),
        "ext-length.cgdm": _extensions_file(declared=9),
        "ext-base-only.cgdm": _extensions_file(diffusion=False),
    }


def _bad_metadata() -> bytes:
    """A file whose ICC record's zlib data has a changed byte, under a valid checksum."""
    data = _with_metadata()
    start = data.index(parse(data).metadata._section) + 20  # inside the ICC record's deflate data
    body = bytearray(data[:-4])
    body[start] ^= 0x55
    return _with_crc(bytes(body))


def python_error(data: bytes) -> str:
    """The one line the Python decoder gives for a file (its message, without 'cgdm: error: ')."""
    try:
        cgdm_codec.decode(data, base_only=True)
    except (FormatError, ValueError) as e:
        return str(e)
    raise AssertionError("the Python decoder accepted it")


# --------------------------------------------------------------------------- no browser needed


def page_files(all_weights: bool = False) -> list[str]:
    """What ``cgdm web`` writes: the page, weights.js, the runtime and the weights scripts."""
    return sorted((*PAGE_FILES, WEIGHTS_JS, *RUNTIME_FILES,
                   *(f"weights-{p.stem}.js" for p in av1_weights(all_weights))))


def test_cgdm_web_writes_the_page_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "viewer"
    run = subprocess.run([*CGDM, "web", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == page_files()
    assert "weights-cgdm-av1-6.js" in page_files()  # the newest generation by default
    assert "index.html" in run.stderr
    again = subprocess.run([*CGDM, "web", str(out)], capture_output=True, text=True)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr
    assert subprocess.run([*CGDM, "web", str(out), "-f", "-Q"], capture_output=True, text=True).returncode == 0
    a_file = tmp_path / "file"
    a_file.write_text("x")
    refused = subprocess.run([*CGDM, "web", str(a_file)], capture_output=True, text=True)
    assert refused.returncode == 1 and refused.stderr.startswith("cgdm: error: ")


def test_cgdm_web_all_weights_writes_every_generation(tmp_path):
    run = subprocess.run([*CGDM, "web", str(tmp_path), "--all-weights", "-Q"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == page_files(all_weights=True)
    text = (tmp_path / WEIGHTS_JS).read_text()
    scripts = json.loads(text[text.index("CGDM_MODEL_SCRIPTS = ") + 21:text.rindex(";")])
    for path in diffusion_golden_files():  # every golden generation has its script
        assert (tmp_path / scripts[parse(path.read_bytes()).weights_id.hex()]).is_file(), path.name


def test_the_page_fetches_nothing_outside_its_folder(tmp_path):
    write_page(tmp_path)
    for name in (*PAGE_FILES, WEIGHTS_JS, "weights-cgdm-av1-6.js"):
        text = (tmp_path / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    for name in RUNTIME_FILES:  # ONNX Runtime Web names one web page, in a warning's text
        text = (tmp_path / name).read_text()
        assert text.replace("https://web.dev/cross-origin-isolation-guide/", "").count("http") == 0, name
    html = (tmp_path / "index.html").read_text()
    assert 'type="module"' not in html  # Chromium runs no module script from a file:// page


def test_weights_js_names_the_installed_weights(tmp_path):
    write_page(tmp_path)
    text = (tmp_path / WEIGHTS_JS).read_text()
    names = json.loads(text[text.index("CGDM_WEIGHTS = ") + 15:text.index(";")])
    for path in golden_files():
        described = cgdm_codec.info(path)
        assert names.get(described["weights_id"]) == described["weights"], path.name


# --------------------------------------------------------------------------- in Chromium

needs_chromium = pytest.mark.skipif(web_harness.chromium() is None,
                                    reason="chromium is not installed (apt-get install chromium): "
                                           "the browser tests of the viewer need it")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium run over every case: {(kind, name): result}."""
    if web_harness.chromium() is None:
        pytest.skip("chromium is not installed")
    folder = tmp_path_factory.mktemp("web")
    write_page(folder, all_weights=True)
    files = {p.name: p.read_bytes() for p in golden_files()}
    files["bad-syntax.cgdm"] = _bad_syntax()
    files["hyperprior-q3.cgdm"] = (GOLDEN / "hyperprior-q3.cgdm").read_bytes()
    for mode in ("L", "RGBA", "LA"):
        files[f"made-{mode}.cgdm"] = _encoded(mode)
    files["made-metadata.cgdm"] = _with_metadata()
    files.update(hostile_files())
    for name, data in files.items():
        (folder / name).write_bytes(data)
    full = {p.name for p in diffusion_golden_files()} | {"bad-syntax.cgdm"}
    cases = [{"name": n, "page": True, "until": ["full", "error"] if n in full else None,
              "pageLimit": FULL_LIMIT_MS if n in full else None} for n in files]
    cases += [{"name": n, "full": True, "limit": FULL_LIMIT_MS} for n in sorted(full)]
    cases += [{"name": "syntax", "syntax": syntax_vectors()}, {"name": "noise", "noise": {"seeds": NOISE_SEEDS, "size": 256}}]
    results, done = web_harness.run_cases(folder, cases, timeout=900)
    assert "fatal" not in done, done
    by_key = {(r["kind"], r["name"]): r for r in results}
    by_key["files"] = files
    return by_key


NOISE_SEEDS = [0, 1, 12345, 2**32 - 1]


def syntax_vectors() -> dict:
    """cgdm-av1-5's syntax tables and byte strings to decode with them: 200 the Python coder
    wrote (symbols uniform over the range, and Gaussian of random widths, clamped) and 200
    byte strings of 0..23 bytes (random, and one that constriction refuses); with the Python answers."""
    from cgdm_codec.entropy_models.syntax_coding import decode_symbols, encode_symbols
    from cgdm_codec.runtime import prior_table

    table = prior_table(av1_weights()[-1])
    r = (table.shape[1] - 1) // 2
    rng = np.random.default_rng(11)
    vectors, want = [], []
    for i in range(200):
        if i % 2:
            symbols = rng.integers(-r, r + 1, table.shape[0])
        else:
            symbols = np.clip(np.round(rng.normal(0, rng.uniform(0.3, 30), table.shape[0])), -r, r).astype(int)
        vectors.append(list(encode_symbols(table, symbols)))
        want.append(symbols.tolist())
    refused = parse(_bad_syntax()).syntax  # constriction refuses few random strings: one it does
    for i in range(200):
        data = refused if i == 0 else bytes(rng.integers(0, 256, int(rng.integers(0, 24)), dtype=np.uint8))
        vectors.append(list(data))
        try:
            want.append(decode_symbols(table, data).tolist())
        except Exception as e:  # noqa: BLE001 (constriction raises AssertionError)
            want.append(f"syntax section is corrupted ({e})")
    return {"table": table.reshape(-1).tolist(), "rows": table.shape[0], "cols": table.shape[1],
            "vectors": vectors, "want": want}


def _picture(result: dict) -> np.ndarray:
    return np.frombuffer(web_harness.pixels(result), np.uint8).reshape(result["height"], result["width"], 4)


def _python_picture(data: bytes) -> np.ndarray:
    return np.asarray(cgdm_codec.decode(data, base_only=True).convert("RGBA")).astype(int)


@needs_chromium
@pytest.mark.parametrize("name", [p.name for p in golden_files()])
def test_golden_file_decodes_as_the_python_base_only_decode(browser, name):
    result = browser[("decode", name)]
    assert result["ok"], result
    data = browser["files"][name]
    diff = np.abs(_picture(result).astype(int) - _python_picture(data))
    lossless = parse(data).base_codec == 3
    assert diff.max() <= (0 if lossless else AV1_TOLERANCE), f"max difference {diff.max()}"
    if lossless:  # the golden PNG is the encoder's input: exact
        png = np.asarray(Image.open(GOLDEN / name.replace(".cgdm", ".png")).convert("RGBA"))
        assert np.array_equal(_picture(result), png)


@needs_chromium
@pytest.mark.parametrize("mode", ["L", "RGBA", "LA"])
def test_gray_stays_gray_and_alpha_is_exact(browser, mode):
    name = f"made-{mode}.cgdm"
    result = browser[("decode", name)]
    assert result["ok"] and result["mode"] == mode, result
    got, want = _picture(result).astype(int), _python_picture(browser["files"][name])
    assert np.abs(got - want).max() <= AV1_TOLERANCE
    assert np.array_equal(got[..., 3], want[..., 3])
    if mode.startswith("L"):
        assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 0], got[..., 2])


@needs_chromium
@pytest.mark.parametrize("name", sorted(hostile_files()))
def test_hostile_file_is_one_error_line_and_no_hang(browser, name):
    result = browser[("decode", name)]
    assert not result["ok"], result
    assert "\n" not in result["error"]
    want = python_error(browser["files"][name])
    if want.startswith("base-codec stream is corrupted"):
        assert result["error"].startswith("base-codec stream is corrupted ("), result["error"]
    else:
        assert result["error"] == want
    page = browser[("page", name)]
    assert page["state"] == "error", page  # within the harness's 10 s: no hang
    assert page["error"] == f"{name}: {result['error']}"


@needs_chromium
def test_other_base_codecs_say_so_in_one_line(browser):
    page = browser[("page", "hyperprior-q3.cgdm")]
    assert page["state"] == "error"
    assert page["error"] == ("hyperprior-q3.cgdm: base codec hyperprior (1) is not decoded in the "
                             "browser yet: use cgdm decode")


def _python_full(data: bytes) -> np.ndarray:
    from cgdm_codec import pipeline

    return pipeline.decode_file(parse(data), DecodeSettings(device="cpu")).astype(int)


@needs_chromium
@pytest.mark.parametrize("name", [p.name for p in diffusion_golden_files()])
def test_golden_file_full_decode_equals_the_python_decode(browser, name):
    """Every generation's golden file, decoded in full by diffusion.js and ONNX Runtime Web."""
    result = browser[("full", name)]
    assert result["ok"], result
    diff = np.abs(_picture(result)[..., :3].astype(int) - _python_full(browser["files"][name]))
    assert diff.mean() <= FULL_MEAN and diff.max() <= FULL_MAX, (diff.mean(), diff.max())
    if parse(browser["files"][name]).weights_id.hex() in ("1bca2eb0", "0e200f05"):  # cgdm-av1-5, -6: measured equal
        assert diff.max() == 0


@needs_chromium
@pytest.mark.parametrize("name", [p.name for p in diffusion_golden_files()])
def test_the_page_shows_the_full_decode(browser, name):
    """The page's canvas (and so its PNG download) holds the full decode once it is ready."""
    page = browser[("page", name)]
    assert page["state"] == "full", page
    png = Image.open(io.BytesIO(base64.b64decode(page["png"].split(",", 1)[1])))
    got = np.asarray(png.convert("RGB")).astype(int)
    diff = np.abs(got - _python_full(browser["files"][name]))
    assert diff.mean() <= FULL_MEAN and diff.max() <= FULL_MAX
    assert page["status"].startswith(f"{name}: full decode (") and "after the base-only picture" in page["status"]
    assert dict(page["info"])["diffusion"].endswith("(run here, realism 0)")


@needs_chromium
def test_the_syntax_decoder_equals_constriction(browser):
    result = browser[("syntax", "syntax")]
    want = syntax_vectors()["want"]
    assert result["symbols"] == want
    assert sum(isinstance(w, str) for w in want) >= 1  # some refused strings were tried


@needs_chromium
def test_the_seeded_noise_equals_the_format_definition(browser):
    from cgdm_codec.sampling.noise import noise_patch

    result = browser[("noise", "noise")]
    for seed, patch in zip(NOISE_SEEDS, result["patches"]):
        got = np.frombuffer(base64.b64decode(patch), np.float32).reshape(3, 256, 256)
        assert np.array_equal(got, noise_patch(seed, 3, 256)), seed


@needs_chromium
def test_a_corrupted_syntax_section_is_the_python_line(browser):
    """Under a valid checksum: the base-only picture shows, then the one line of cgdm decode."""
    name = "bad-syntax.cgdm"
    want = ""
    try:
        cgdm_codec.decode(browser["files"][name])
    except FormatError as e:
        want = str(e)
    assert want.startswith("syntax section is corrupted (")
    assert browser[("full", name)]["error"] == want
    page = browser[("page", name)]
    assert page["state"] == "error" and page["error"] == f"{name}: {want}"


@needs_chromium
def test_the_page_shows_the_info_fields_and_the_extensions(browser):
    name = "av1-cgdm5-q3-map.cgdm"
    page = browser[("page", name)]
    described = cgdm_codec.info(GOLDEN / name)
    assert dict(page["info"])["extensions"].startswith(
        ", ".join(f"{k} {v} B" for k, v in described["extensions"].items()))
    assert browser[("decode", name)]["info"]["extensions"] == described["extensions"] == {"texture map": 13}


@needs_chromium
def test_the_page_shows_the_info_fields_and_says_what_it_runs(browser):
    name = "av1-cgdm5-q3.cgdm"
    page = browser[("page", name)]
    assert page["state"] == "full", page
    rows = dict(page["info"])
    described = cgdm_codec.info(GOLDEN / name)
    assert rows["image"] == f"{described['width']}x{described['height']} {described['colour_mode']}"
    assert rows["size"] == (f"{described['bytes']} bytes, {described['bpp']} bpp "
                            f"({described['framing_bytes']} bytes of framing)")
    assert rows["weights"] == f"{described['weights']} ({described['weights_id']})"
    assert rows["sections"] == ", ".join(f"{k} {v} B" for k, v in described["sections"].items())
    assert rows["base codec"] == "av1 (2)" and rows["quality"] == str(described["quality"])
    assert rows["extensions"] == "none"
    assert "diffusion stage run here by ONNX Runtime Web" in " ".join(page["notice"].split())


@needs_chromium
def test_a_file_with_metadata_decodes_and_lists_it(browser):
    name = "made-metadata.cgdm"
    result = browser[("decode", name)]
    assert result["ok"], result
    assert np.abs(_picture(result).astype(int) - _python_picture(browser["files"][name])).max() <= AV1_TOLERANCE
    described = cgdm_codec.info(browser["files"][name])
    assert result["info"]["metadata"] == described["metadata"] and set(described["metadata"]) == {"icc", "exif"}
    assert dict(browser[("page", name)]["info"])["metadata"] == ", ".join(
        f"{k} {v} B" for k, v in described["metadata"].items())


@needs_chromium
@pytest.mark.parametrize("name", ["av1-q3.cgdm", "made-L.cgdm"])
def test_the_png_download_holds_the_decoded_pixels(browser, name):
    """The download button's PNG is the page canvas's (toBlob; toDataURL here: the same encoder)."""
    page = browser[("page", name)]
    png = Image.open(io.BytesIO(base64.b64decode(page["png"].split(",", 1)[1])))
    decoded = browser[("decode", name)]
    assert png.size == (decoded["width"], decoded["height"])
    got = np.asarray(png.convert("RGBA")).astype(int)
    assert np.abs(got - _python_picture(browser["files"][name])).max() <= AV1_TOLERANCE


@needs_chromium
def test_the_full_decode_runs_from_file_urls(tmp_path):
    """Opened from disk, a file chosen in the picker decodes in full: the runtime's module
    comes from a blob: URL and its WebAssembly from a script, as file:// pages fetch nothing."""
    write_page(tmp_path)
    name = "av1-cgdm6-q3.cgdm"  # the newest generation: the default page's weights
    shown = web_harness.pick_from_disk(tmp_path, GOLDEN / name, timeout=FULL_LIMIT_MS / 1000)
    assert shown["href"].startswith("file://") and not shown["isolated"]
    assert shown["state"] == "full", shown
    assert shown["status"].startswith(f"{name}: full decode (1 DDIM step, 2 tiles, 1 thread)")


@needs_chromium
def test_the_page_runs_from_file_urls(tmp_path):
    """Opened from disk (file://), the scripts run: Chromium would refuse module scripts."""
    write_page(tmp_path)
    with_profile = tmp_path / "profile"
    run = subprocess.run(web_harness.chromium_args(str(with_profile))
                         + ["--dump-dom", (tmp_path / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert 'data-state="ready"' in run.stdout, run.stdout[:500]
