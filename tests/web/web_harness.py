"""Drive the browser viewer (``cgdm web``) in headless Chromium, for tests/web/test_web.py.

No browser-automation library: the folder ``cgdm web`` writes is served on 127.0.0.1 with a
harness page beside it, Chromium opens that page headless, and the page POSTs what it found
(decoded pixels, error lines, timings) back to the same small server. Chromium is then
ended by its process id. Everything is local; the page reaches no other host.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

#: The harness page: decodes each case with the page's own decoder (cgdm.js), then opens
#: index.html?file=CASE in an iframe and reads what the page shows. Each case has a time
#: limit, so a hang is reported as one, not waited out.
HARNESS = """<!doctype html><meta charset="utf-8"><title>cgdm harness</title>
<script src="cgdm.js"></script><script src="weights.js"></script><script src="diffusion.js"></script>
<body><script>
const post = (path, body) => fetch(path, {method: "POST", body: JSON.stringify(body)});
const limit = (p, ms) => Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error("timeout")), ms))]);
function b64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
async function decodeCase(c) {
  const bytes = new Uint8Array(await (await fetch(c.name)).arrayBuffer());
  const times = [];
  let out;
  for (let i = 0; i < (c.repeat || 1); i++) {
    const t0 = performance.now();
    try {
      const {file, picture} = await limit(c.full ? cgdm.decodeFull(bytes, {threads: c.threads}) : cgdm.decode(bytes), c.limit || 10000);
      times.push(performance.now() - t0);
      out = {name: c.name, ok: true, width: picture.width, height: picture.height, mode: picture.mode,
             info: cgdm.info(file), rgba: c.pixels === false ? null : b64(picture.rgba),
             threads: picture.threads, timing: picture.timing, tiles: picture.tiles, isolated: self.crossOriginIsolated};
    } catch (e) {
      out = {name: c.name, ok: false, error: e.message, errorType: e.constructor.name};
      break;
    }
  }
  out.ms = times;
  out.full = Boolean(c.full);
  return out;
}
async function pageCase(c) {
  const frame = document.createElement("iframe");
  frame.style.width = "1000px"; frame.style.height = "700px";
  document.body.append(frame);
  const t0 = performance.now();
  frame.src = "index.html?file=" + encodeURIComponent(c.name);
  let state = "";
  const until = c.until || ["decoded", "full", "error"];
  while (performance.now() - t0 < (c.pageLimit || 10000)) {
    await new Promise((r) => setTimeout(r, 20));
    const body = frame.contentDocument && frame.contentDocument.body;
    state = body ? body.dataset.state : "";
    if (until.includes(state)) break;
  }
  const doc = frame.contentDocument;
  const err = doc.getElementById("error");
  const rows = Array.from(doc.querySelectorAll("#info tr"), (tr) => [tr.cells[0].textContent, tr.cells[1].textContent]);
  const result = {name: c.name, state, error: err.hidden ? null : err.textContent,
                  status: doc.getElementById("status").textContent, info: rows,
                  ms: Number(doc.body.dataset.ms || "NaN"), fullMs: Number(doc.body.dataset.fullMs || "NaN"),
                  notice: doc.getElementById("notice").textContent,
                  png: state === "decoded" || state === "full" ? doc.getElementById("decoded").toDataURL("image/png") : null};
  frame.remove();
  return result;
}
function syntaxCase(c) {
  // the page's syntax decoder on vectors the Python coder wrote (or random bytes)
  const table = Int32Array.from(c.syntax.table);
  const symbols = c.syntax.vectors.map((bytes) => {
    try {
      return Array.from(cgdm.decodeSyntax(table, c.syntax.rows, c.syntax.cols, Uint8Array.from(bytes)));
    } catch (e) {
      return e.message;
    }
  });
  return {name: c.name, symbols};
}
function noiseCase(c) {
  const t0 = performance.now();
  const patches = c.noise.seeds.map((seed) => b64(new Uint8Array(cgdm.noisePatch(seed, 3, c.noise.size).buffer)));
  return {name: c.name, patches, ms: performance.now() - t0};
}
(async () => {
  const cases = await (await fetch("cases.json")).json();
  for (const c of cases) {
    if (c.syntax) await post("/result", {kind: "syntax", ...syntaxCase(c)});
    else if (c.noise) await post("/result", {kind: "noise", ...noiseCase(c)});
    else await post("/result", {kind: c.full ? "full" : "decode", ...(await decodeCase(c))});
  }
  for (const c of cases.filter((c) => c.page)) await post("/result", {kind: "page", ...(await pageCase(c))});
  await post("/done", {userAgent: navigator.userAgent});
})().catch((e) => post("/done", {fatal: String(e)}));
</script>
"""


def chromium() -> str | None:
    """Debian's chromium, or None (the tests then skip)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_version() -> str:
    exe = chromium()
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def chromium_args(profile: str) -> list[str]:
    """Headless, no GPU, no sandbox as root (as in a CI container), nothing fetched at start."""
    args = [chromium(), "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--mute-audio", f"--user-data-dir={profile}"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


#: The headers that make a page cross-origin isolated, which WebAssembly threads need.
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def _handler(folder: Path, results: "queue.Queue[tuple[str, dict]]", isolated: bool = False) -> type:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def end_headers(self) -> None:
            if isolated:
                for key, value in ISOLATION_HEADERS.items():
                    self.send_header(key, value)
            super().end_headers()

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            results.put((self.path, json.loads(body or b"{}")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:  # quiet test output
            pass

    return Handler


class Served:
    """``folder`` on a local port for the duration of a ``with`` block."""

    def __init__(self, folder: Path, isolated: bool = False) -> None:
        self.results: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.server = _Server(("127.0.0.1", 0), _handler(folder, self.results, isolated))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> "Served":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_cases(folder: Path, cases: list[dict], timeout: float = 120, isolated: bool = False) -> tuple[list[dict], dict]:
    """Decode ``cases`` (files in ``folder``, beside the page) in headless Chromium.

    Returns the per-case results (decoder results first, then the page's) and the final
    message (the user agent). Raises TimeoutError if the page does not finish in time.
    """
    (folder / "harness.html").write_text(HARNESS)
    (folder / "cases.json").write_text(json.dumps(cases))
    found: list[dict] = []
    with Served(folder, isolated) as served, tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(chromium_args(profile) + [served.url + "harness.html"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the page did not finish in {timeout} s ({len(found)} results)")
                try:
                    path, body = served.results.get(timeout=min(left, 5))
                except queue.Empty:
                    if proc.poll() is not None:
                        raise RuntimeError(f"chromium exited with status {proc.returncode}") from None
                    continue
                if path == "/done":
                    return found, body
                found.append(body)
        finally:
            proc.kill()
            proc.wait(timeout=30)


def pixels(result: dict) -> bytes:
    """The RGBA bytes a decoder case sent back."""
    return base64.b64decode(result["rgba"])


def _above(fd: int, low: int) -> int:
    """``fd`` moved to a descriptor number of at least ``low``."""
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, low)
    os.close(fd)
    return moved


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe``: the DevTools protocol as
    NUL-terminated JSON on file descriptors 3 (commands) and 4 (replies), so no websocket
    client is needed. Used for screenshots taken once the page says it is done."""

    def __init__(self, size: tuple[int, int]) -> None:
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()
        # above 4, so that the shell's 3<& and 4>& cannot overwrite one with the other
        to_chrome, from_chrome = (_above(fd, 10) for fd in (to_chrome, from_chrome))
        # bash (dash takes one-digit descriptors only) puts the two pipe ends on fds 3 and 4, where Chromium expects them
        command = ["bash", "-c", f'exec "$@" 3<&{to_chrome} 4>&{from_chrome}', "bash",
                   *chromium_args(self._profile.name), f"--window-size={size[0]},{size[1]}",
                   "--hide-scrollbars", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(command, pass_fds=(to_chrome, from_chrome),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer = b""
        self._next = 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=size[0], height=size[1],
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, session: bool = False, **params) -> dict:
        """Send one command and wait for its reply (events in between are dropped)."""
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", session=True, expression=expression,
                         returnByValue=True)["result"].get("value")

    def open(self, url: str, until=("decoded", "error", "ready"), timeout: float = 20) -> str:
        """Navigate and wait until the page's ``data-state`` is one of ``until``."""
        self.evaluate("document.body && (document.body.dataset.state = 'navigating')")
        self.call("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.evaluate("document.body ? document.body.dataset.state || '' : ''")
            if state in until:
                return state
            time.sleep(0.05)
        raise TimeoutError(f"{url}: still '{state}' after {timeout} s")

    def screenshot(self, out: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        Path(out).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        os.close(self._write)
        os.close(self._read)
        self._profile.cleanup()


def pick_from_disk(folder: Path, cgdm_file: Path, until=("full", "error"), timeout: float = 300,
                   size: tuple[int, int] = (1100, 760), shot: Path | None = None) -> dict:
    """Open ``folder``'s index.html from disk (file://), choose ``cgdm_file`` in its file
    picker (DevTools' DOM.setFileInputFiles, as a person would) and wait for ``until``:
    the page's state, error line, status and timings (and a screenshot to ``shot``)."""
    tools = DevTools(size)
    try:
        tools.open((Path(folder) / "index.html").as_uri(), ("ready",))
        root = tools.call("DOM.getDocument", session=True)["root"]["nodeId"]
        node = tools.call("DOM.querySelector", session=True, nodeId=root, selector="#pick")["nodeId"]
        tools.call("DOM.setFileInputFiles", session=True, nodeId=node, files=[str(Path(cgdm_file).resolve())])
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = tools.evaluate("document.body.dataset.state")
            if state in until:
                break
            time.sleep(0.05)
        found = tools.evaluate("({state: document.body.dataset.state, ms: document.body.dataset.ms, "
                               "fullMs: document.body.dataset.fullMs, status: document.getElementById('status').textContent, "
                               "error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent, "
                               "isolated: self.crossOriginIsolated, href: location.href})")
        if shot is not None:
            time.sleep(0.2)
            tools.screenshot(shot)
        return found
    finally:
        tools.close()


def screenshot(url: str, out: Path, size: tuple[int, int] = (1100, 760), until=("decoded", "error", "ready"),
               then: str | None = None, timeout: float = 20) -> str:
    """A PNG of the page at ``url`` once its state is one of ``until`` (and the script
    ``then`` has run); the state it reached."""
    tools = DevTools(size)
    try:
        state = tools.open(url, until, timeout)
        if then:
            tools.evaluate(then)
        time.sleep(0.2)  # a frame or two for the canvas to be painted
        tools.screenshot(out)
        return state
    finally:
        tools.close()


def make_screenshots(out: Path, photo: Path) -> None:
    """docs/web's screenshots: the picker (from file://), a golden file decoded in full, the
    slider over ``photo`` (resized to 768x512, coded at quality 3) in full, the same photo's
    base-only picture while its full decode runs, and a truncated file's error."""
    import shutil as sh

    import cgdm_codec
    from PIL import Image

    from cgdm_codec.webpage import write_page

    golden = Path(__file__).resolve().parents[1] / "golden" / "av1-cgdm5-q3.cgdm"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_page(folder)
        sh.copy(golden, folder)
        (folder / "truncated.cgdm").write_bytes(golden.read_bytes()[:-40])
        im = Image.open(photo).convert("RGB")
        im = im.resize((768, round(im.height * 768 / im.width)), Image.LANCZOS)
        top = (im.height - 512) // 2
        im = im.crop((0, top, 768, top + 512))
        im.save(folder / "photo.png")
        (folder / "photo.cgdm").write_bytes(cgdm_codec.encode(im, quality=3, base="av1"))
        screenshot((folder / "index.html").as_uri(), out / "picker.png", (1000, 420))
        with Served(folder) as served:
            page = served.url + "index.html?file="
            full = ("full", "error")
            screenshot(page + golden.name, out / "decoded-golden.png", (1000, 680), full, timeout=300)
            screenshot(page + "photo.cgdm&original=photo.png&slider=50", out / "compare-slider.png", (1280, 1000),
                       full, timeout=300)
            screenshot(page + "photo.cgdm", out / "base-then-full.png", (1280, 1000), ("decoded",), timeout=300)
            screenshot(page + "truncated.cgdm", out / "error-truncated.png", (1000, 420))


def photo_768x512(photo: Path, folder: Path) -> tuple[bytes, "Image.Image"]:
    """``photo`` resized to 768 wide, its middle 512 rows, coded at quality 3 (the default
    decode the timings of docs/web.md are for): the file's bytes and the picture."""
    import cgdm_codec
    from PIL import Image

    im = Image.open(photo).convert("RGB")
    im = im.resize((768, round(im.height * 768 / im.width)), Image.LANCZOS)
    top = (im.height - 512) // 2
    im = im.crop((0, top, 768, top + 512))
    return cgdm_codec.encode(im, quality=3, base="av1"), im


def measure(photo: Path, repeat: int = 5) -> dict:
    """docs/web.md's timings: the 768x512 default decode in headless Chromium, base-only and
    full, one thread (served plainly, as from file://) and WebAssembly threads (served
    cross-origin isolated), in the decoder and in the page."""
    import cgdm_codec
    from cgdm_codec.webpage import write_page

    out: dict = {"chromium": chromium_version()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_page(folder)
        data, im = photo_768x512(photo, folder)
        (folder / "photo.cgdm").write_bytes(data)
        out["bytes"] = len(data)
        t0 = time.perf_counter()
        cgdm_codec.decode(data, device="cpu")
        out["python_full_ms_first"] = 1000 * (time.perf_counter() - t0)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            cgdm_codec.decode(data, device="cpu")
            times.append(1000 * (time.perf_counter() - t0))
        out["python_full_ms"] = times
        for isolated in (False, True):
            cases = [{"name": "photo.cgdm", "repeat": repeat, "pixels": False, "page": True, "until": ["full", "error"],
                      "pageLimit": 300000},
                     {"name": "photo.cgdm", "full": True, "repeat": repeat, "pixels": False, "limit": 300000}]
            results, done = run_cases(folder, cases, timeout=900, isolated=isolated)
            key = "threads" if isolated else "one_thread"
            out[key] = {"base_ms": results[0]["ms"], "full_ms": results[1]["ms"], "threads": results[1].get("threads"),
                        "isolated": results[1].get("isolated"), "timing_last": results[1].get("timing"),
                        "page": {k: results[2][k] for k in ("state", "ms", "fullMs", "status")}}
            assert results[2]["state"] == "full", results[2]
        # from disk (file://, one thread), cold: the page loads the runtime and the weights first
        out["file_url"] = [pick_from_disk(folder, folder / "photo.cgdm") for _ in range(2)]
    return out


if __name__ == "__main__":  # python tests/web/web_harness.py docs/web PHOTO | --measure PHOTO
    import sys

    if sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2])), indent=1))
    else:
        make_screenshots(Path(sys.argv[1]), Path(sys.argv[2]))
