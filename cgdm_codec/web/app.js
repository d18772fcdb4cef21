// The page: open a .cgdm file (picker, drag-and-drop or ?file=NAME.cgdm beside the page),
// show its base-only decode and its `cgdm info` fields, offer a PNG, and compare with the
// original image when one is given. Everything runs here; nothing is sent anywhere.

(function () {
"use strict";
const { decode, info } = globalThis.cgdm; // cgdm.js
const WEIGHTS = globalThis.CGDM_WEIGHTS || {}; // weights.js, written by `cgdm web`

const $ = (id) => document.getElementById(id);
let current = null; // {name, picture}
let original = null; // an ImageBitmap of the original image

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

/** The info table: the fields `cgdm info` prints. */
function showInfo(f) {
  const weights = f.weights ? `${f.weights} (${f.weights_id})` : f.weights_id;
  const rows = [
    ["image", `${f.width}x${f.height} ${f.colour_mode}`],
    ["quality", f.quality],
    ["size", `${f.bytes} bytes, ${f.bpp} bpp (${f.framing_bytes} bytes of framing)`],
    ["base codec", `${f.base_codec} (${f.base_codec_id})`],
    ["weights", weights],
    ["diffusion", f.diffusion ? `${f.steps} DDIM step${f.steps === 1 ? "" : "s"}, seed ${f.seed} (not run here: base-only)`
      : `none (base codec only), seed ${f.seed}`],
    ["sections", Object.entries(f.sections).map(([k, v]) => `${k} ${v} B`).join(", ")],
    ["metadata", Object.entries(f.metadata).map(([k, v]) => `${k} ${v} B`).join(", ") || "none"],
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

/** Decode the bytes of a .cgdm file and show it; one error line if it cannot be. */
async function openCgdm(name, bytes) {
  clearError();
  document.body.dataset.state = "decoding";
  $("status").textContent = `decoding ${name}…`;
  const start = performance.now();
  let result;
  try {
    result = await decode(bytes);
  } catch (e) {
    $("result").hidden = true;
    showError(name, e);
    return;
  }
  const { file, picture } = result;
  const canvas = $("decoded");
  canvas.width = picture.width;
  canvas.height = picture.height;
  canvas.getContext("2d").putImageData(new ImageData(picture.rgba, picture.width, picture.height), 0, 0);
  const ms = performance.now() - start;
  current = { name, picture };
  showInfo(info(file, WEIGHTS));
  $("result").hidden = false;
  $("status").textContent = `${name}: ${what(file)}, ${picture.width}x${picture.height}, shown in ${ms.toFixed(0)} ms`;
  document.body.dataset.ms = ms.toFixed(1);
  document.body.dataset.shownAt = performance.now().toFixed(1); // since the page began to load
  document.body.dataset.state = "decoded";
  drawOriginal();
}

/** What the picture shown is, next to what `cgdm decode` would give. */
function what(file) {
  if (file.diffusion) return "base-only decode (the file's diffusion stage is not run in the browser)";
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
  over.width = current.picture.width;
  over.height = current.picture.height;
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
    a.download = current.name.replace(/\.cgdm$/i, "") + ".base.png";
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
