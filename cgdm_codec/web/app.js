// The page: open a .cgdm file (picker, drag-and-drop or ?file=NAME.cgdm beside the page),
// show its base-only decode at once and its `cgdm info` fields, then run the diffusion
// stage (diffusion.js, ONNX Runtime Web) and show the full decode when it is ready; offer a
// PNG, and compare with the original image when one is given. Everything runs here;
// nothing is sent anywhere.

(function () {
"use strict";
const { decode, info, canDecodeFull, decodeStage } = globalThis.cgdm; // cgdm.js, diffusion.js
const WEIGHTS = globalThis.CGDM_WEIGHTS || {}; // weights.js, written by `cgdm web`

const $ = (id) => document.getElementById(id);
let current = null; // {name, file, base, full, showing: "base" | "full"}
let original = null; // an ImageBitmap of the original image
let opened = 0; // counts the files opened: a full decode still running for an earlier one is dropped

/** One error line, as `cgdm decode` prints it (the file's name, then the reason). */
function showError(name, error) {
  const message = error && error.message ? error.message : String(error);
  $("error").textContent = `${name}: ${message}`;
  $("error").hidden = false;
  $("status").textContent = "";
  document.body.dataset.state = "error";
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

/** The info table: the fields `cgdm info` prints; `stage` says what the page does with the diffusion stage. */
function showInfo(f, stage) {
  const weights = f.weights ? `${f.weights} (${f.weights_id})` : f.weights_id;
  const rows = [
    ["image", `${f.width}x${f.height} ${f.colour_mode}`],
    ["quality", f.quality],
    ["size", `${f.bytes} bytes, ${f.bpp} bpp (${f.framing_bytes} bytes of framing)`],
    ["base codec", `${f.base_codec} (${f.base_codec_id})`],
    ["weights", weights],
    ["diffusion", f.diffusion ? `${f.steps} DDIM step${f.steps === 1 ? "" : "s"}, seed ${f.seed} (${stage})`
      : `none (base codec only), seed ${f.seed}`],
    ["sections", Object.entries(f.sections).map(([k, v]) => `${k} ${v} B`).join(", ")],
    ["metadata", Object.entries(f.metadata).map(([k, v]) => `${k} ${v} B`).join(", ") || "none"],
    ["extensions", Object.entries(f.extensions).map(([k, v]) => `${k} ${v} B${k === "texture map" ? " (used above realism 0; this page decodes at 0)" : ""}`).join(", ") || "none"],
  ];
  const table = $("info");
  table.replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    const td = document.createElement("td");
    th.textContent = k;
    td.textContent = String(v);
    tr.append(th, td);
    return tr;
  }));
}

/** Put a picture on the page's canvas. */
function draw(picture) {
  const canvas = $("decoded");
  canvas.width = picture.width;
  canvas.height = picture.height;
  canvas.getContext("2d").putImageData(new ImageData(picture.rgba, picture.width, picture.height), 0, 0);
}

/** Decode the bytes of a .cgdm file and show it: the base-only picture at once, then the
 * full decode where the file has a diffusion stage this page can run; one error line if it
 * cannot be decoded. */
async function openCgdm(name, bytes) {
  const mine = ++opened;
  clearError();
  document.body.dataset.state = "decoding";
  delete document.body.dataset.fullMs;
  $("status").textContent = `decoding ${name}…`;
  $("toggle").hidden = true;
  const start = performance.now();
  let result;
  try {
    result = await decode(bytes);
  } catch (e) {
    if (mine !== opened) return;
    $("result").hidden = true;
    showError(name, e);
    return;
  }
  if (mine !== opened) return;
  const { file, picture } = result;
  draw(picture);
  const ms = performance.now() - start;
  const full = canDecodeFull(file);
  current = { name, file, base: picture, full: null, showing: "base" };
  const described = info(file, WEIGHTS);
  showInfo(described, full ? "running here…" : "not run here: base-only");
  $("result").hidden = false;
  $("status").textContent = `${name}: ${what(file, full)}, ${picture.width}x${picture.height}, shown in ${ms.toFixed(0)} ms`;
  document.body.dataset.ms = ms.toFixed(1);
  document.body.dataset.shownAt = performance.now().toFixed(1); // since the page began to load
  document.body.dataset.state = "decoded";
  drawOriginal();
  if (full) await runFull(mine, name, file, picture, described, ms);
}

/** The diffusion stage of the file shown, then its full decode in place of the base-only picture. */
async function runFull(mine, name, file, base, described, baseMs) {
  const start = performance.now();
  const status = (text) => { if (mine === opened) $("status").textContent = `${name}: ${text}`; };
  status(`base-only picture shown in ${baseMs.toFixed(0)} ms; full decode: loading the runtime and weights…`);
  document.body.dataset.state = "decoded";
  let picture;
  try {
    picture = await decodeStage(file, base, {
      progress: (done, total) => status(`base-only picture shown in ${baseMs.toFixed(0)} ms; full decode: tile ${done} of ${total}…`),
    });
  } catch (e) {
    if (mine !== opened) return;
    showInfo(described, "failed: base-only shown");
    showError(name, e);
    return;
  }
  if (mine !== opened) return;
  const ms = performance.now() - start;
  current.full = picture;
  current.showing = "full";
  draw(picture);
  showInfo(described, "run here, realism 0");
  const threads = picture.threads === 1 ? "1 thread" : `${picture.threads} threads`;
  status(`full decode (${picture.steps} DDIM step${picture.steps === 1 ? "" : "s"}, ${picture.tiles} tile${picture.tiles === 1 ? "" : "s"}, ${threads}), ${picture.width}x${picture.height}, in ${ms.toFixed(0)} ms after the base-only picture (${baseMs.toFixed(0)} ms)`);
  $("toggle").hidden = false;
  $("toggle").textContent = "Show base-only";
  document.body.dataset.fullMs = ms.toFixed(1);
  document.body.dataset.state = "full";
}

/** Flip between the full decode and the base-only picture. */
function toggle() {
  if (!current || !current.full) return;
  current.showing = current.showing === "full" ? "base" : "full";
  draw(current.showing === "full" ? current.full : current.base);
  $("toggle").textContent = current.showing === "full" ? "Show base-only" : "Show full decode";
}

/** What the picture shown is, next to what `cgdm decode` would give. */
function what(file, full) {
  if (file.diffusion && full) return "base-only decode (the full decode follows)";
  if (file.diffusion) return "base-only decode (the file's diffusion stage is not run in the browser: this page has no weights for it)";
  if (file.baseCodec === 3) return "exact decode (lossless file)";
  return "decode (a base-only file: the same picture as cgdm decode)";
}

/** Lay the original over the decode; the slider uncovers one or the other. */
function drawOriginal() {
  const over = $("original");
  if (!original || !current) {
    over.hidden = $("compare").hidden = $("divider").hidden = true;
    return;
  }
  over.width = current.base.width;
  over.height = current.base.height;
  // a different size is scaled to the decode's, so that the two line up
  over.getContext("2d").drawImage(original, 0, 0, over.width, over.height);
  over.hidden = $("compare").hidden = $("divider").hidden = false;
  slide();
}

function slide() {
  const v = Number($("slider").value);
  $("original").style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  $("divider").style.left = `${v}%`;
}

async function openOriginal(name, blob) {
  try {
    original = await createImageBitmap(blob, { colorSpaceConversion: "none" });
  } catch (e) {
    showError(name, new Error("not an image this browser decodes"));
    return;
  }
  drawOriginal();
}

/** Files from the picker or a drop: a .cgdm is decoded, anything else taken as the original. */
async function openFiles(files) {
  const list = Array.from(files);
  const cgdm = list.find((f) => /\.cgdm$/i.test(f.name)) || (list.length === 1 && !list[0].type.startsWith("image/") ? list[0] : null);
  const image = list.find((f) => f !== cgdm);
  if (image) await openOriginal(image.name, image);
  if (cgdm) await openCgdm(cgdm.name, new Uint8Array(await cgdm.arrayBuffer()));
}

function download() {
  if (!current) return;
  $("decoded").toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    const base = current.file.diffusion && current.showing !== "full";
    a.download = current.name.replace(/\.cgdm$/i, "") + (base ? ".base.png" : ".png");
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }, "image/png");
}

/** ?file=NAME.cgdm&original=NAME.png: files beside the page only (no other site, no ..). */
async function openFromQuery() {
  const params = new URLSearchParams(location.search);
  const local = (name) => name && /^[\w][\w.-]*$/.test(name);
  const orig = params.get("original");
  const name = params.get("file");
  for (const [n, what] of [[orig, "original"], [name, "file"]]) {
    if (n !== null && !local(n)) return showError(n, new Error(`?${what}= takes a file name beside this page`));
  }
  if (orig || name) document.body.dataset.state = "loading";
  try {
    if (orig) await openOriginal(orig, await (await fetchLocal(orig)).blob());
    if (name) await openCgdm(name, new Uint8Array(await (await fetchLocal(name)).arrayBuffer()));
  } catch (e) {
    showError(name || orig, e);
  }
  if (params.has("slider")) {
    $("slider").value = params.get("slider");
    slide();
  }
}

async function fetchLocal(name) {
  const response = await fetch(name);
  if (!response.ok) throw new Error(`cannot read it (HTTP ${response.status})`);
  return response;
}

function wire() {
  $("pick").addEventListener("change", (e) => openFiles(e.target.files));
  $("pick-original").addEventListener("change", (e) => openFiles(e.target.files));
  $("download").addEventListener("click", download);
  $("toggle").addEventListener("click", toggle);
  $("slider").addEventListener("input", slide);
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    document.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  document.addEventListener("dragleave", () => drop.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    openFiles(e.dataTransfer.files);
  });
}

wire();
document.body.dataset.state = "ready";
openFromQuery();
})();
