// The diffusion stage of a .cgdm file, in the browser: the full decode at realism 0.
//
// What `cgdm decode` does in cgdm_codec/pipeline.py (decode_file, the ONNX Runtime branch),
// step by step, with the same arithmetic:
//   * the syntax section: a queue range decoder over 32-bit words with a 64-bit state and
//     24-bit probabilities, symbol by symbol from the weights' integer tables, each turned
//     into a categorical model as constriction's Categorical(perfect=False) does (the
//     algorithm is written down in docs/web.md, "The syntax decoder");
//   * the condition: the AV1 frame's base_q_idx (cgdm.av1Qindex);
//   * x_T: the seeded noise of format.md 9.4 (SplitMix64 on 32-bit halves, Box-Muller in
//     float64, then float32), one P x P patch repeated over the padded canvas;
//   * the tiles of sampling/tiling.py (fixed or fitted), x~ padded by reflection or
//     replication, the three graphs (condition, features, denoise) run by ONNX Runtime Web,
//     the tiles' x0 blended with raised-cosine weights, the DDIM step of sampling/ddim.py in
//     float32, and the output (x + 1) / 2, clipped, times 255, rounded half to even.
//
// A classic script (the page opens from file://). It adds decodeFull, decodeSyntax,
// noisePatch, makeGrid and the loaders to the global `cgdm` of cgdm.js. The runtime
// (ONNX Runtime Web: its script, its glue module and its WebAssembly binary) and the
// weights are classic scripts too, written by `cgdm web` and added to the page only when
// a full decode needs them.

(function () {
  "use strict";
  const cgdm = globalThis.cgdm;
  const { FormatError } = cgdm;

  // ------------------------------------------------------------------ the syntax decoder

  const PRECISION = 24;
  const ONE = 2 ** PRECISION;
  const EPSILON = 2 ** -52; // f64's machine epsilon
  const MASK64 = (1n << 64n) - 1n;
  const INVALID = "Tried to decode from compressed data that is invalid for the employed entropy model.";

  /** Categorical(perfect=False) of one row of positive weights: {pmf, scale}. */
  function categorical(pmf) {
    let norm = 0;
    for (let i = 0; i < pmf.length; i++) norm += pmf[i];
    if (pmf.length < 2 || !(norm >= 2 ** -1022) || !Number.isFinite(norm)) {
      throw new Error("Probability distribution not normalizable");
    }
    return { pmf, scale: (ONE - pmf.length) / norm };
  }

  /** [symbol, left cumulative, probability] of a 24-bit quantile (floats are f64, ints u32). */
  function quantileFunction(model, quantile) {
    const { pmf, scale } = model;
    const n = pmf.length;
    const enlarged = (1 + EPSILON + EPSILON) * scale;
    const lowerBound = Math.max(quantile - n, 0) / enlarged;
    let left = 0, right = 0, i = 0, next = 0;
    while (i < n) {
      const p = pmf[i++];
      next++;
      left = right;
      right += p;
      if (right >= lowerBound) break;
    }
    let leftCum = Math.trunc(left * scale) + (next - 1);
    while (i < n) {
      const p = pmf[i++];
      const rightCum = Math.trunc(right * scale) + next;
      if (rightCum > quantile) return [next - 1, leftCum, rightCum - leftCum];
      leftCum = rightCum;
      right += p;
      next++;
    }
    return [next - 1, leftCum, ONE - leftCum];
  }

  /**
   * The syntax symbols (Int32Array, -R..R) of a syntax section: `table` is the weights'
   * prior.table, rows of 2R + 1 positive integers, one row per symbol. Throws the Python
   * decoder's FormatError on data no encoder wrote.
   */
  function decodeSyntax(table, rows, cols, data) {
    const words = [];
    for (let p = 0; p < data.length; p += 4) {
      words.push(BigInt((data[p] | ((data[p + 1] || 0) << 8) | ((data[p + 2] || 0) << 16) | ((data[p + 3] || 0) << 24)) >>> 0));
    }
    let next = 0;
    let point = 0n, read = 0;
    while (next < words.length && read < 2) { point = (point << 32n) | words[next++]; read++; }
    if (read === 1) point <<= 32n;
    let lower = 0n, range = MASK64;
    const out = new Int32Array(rows);
    const r = (cols - 1) / 2;
    for (let s = 0; s < rows; s++) {
      const model = categorical(Float64Array.from(table.subarray(s * cols, (s + 1) * cols)));
      const scale = range >> BigInt(PRECISION);
      const quantile = ((point - lower) & MASK64) / scale;
      if (quantile >= BigInt(ONE)) throw new FormatError(`syntax section is corrupted (${INVALID})`);
      const [symbol, leftCum, probability] = quantileFunction(model, Number(quantile));
      lower = (lower + scale * BigInt(leftCum)) & MASK64;
      range = scale * BigInt(probability);
      if (range < (1n << 32n)) {
        lower = (lower << 32n) & MASK64;
        range <<= 32n;
        point = (point << 32n) & MASK64;
        if (next < words.length) point |= words[next++];
      }
      out[s] = symbol - r;
    }
    return out;
  }

  // ------------------------------------------------------------------ the seeded noise (format.md 9.4)

  // 64-bit words as [hi, lo] unsigned 32-bit halves.
  const GAMMA = [0x9e3779b9, 0x7f4a7c15], MIX1 = [0xbf58476d, 0x1ce4e5b9], MIX2 = [0x94d049bb, 0x133111eb];

  function add64(a, b) {
    const lo = a[1] + b[1];
    return [(a[0] + b[0] + (lo > 0xffffffff ? 1 : 0)) >>> 0, lo >>> 0];
  }

  /** The low 64 bits of a * b. */
  function mul64(a, b) {
    const [ah, al] = a, [bh, bl] = b;
    const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
    const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    const lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
    const hi = p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(ah, bl) + Math.imul(al, bh);
    return [hi >>> 0, lo];
  }

  /** z ^ (z >> k), 0 < k < 32. */
  const xorShift = (z, k) => [(z[0] ^ (z[0] >>> k)) >>> 0, (z[1] ^ ((z[1] >>> k) | (z[0] << (32 - k)))) >>> 0];

  /** SplitMix64's output function. */
  function mix(z) {
    z = mul64(xorShift(z, 30), MIX1);
    z = mul64(xorShift(z, 27), MIX2);
    return xorShift(z, 31);
  }

  /** The (C, P, P) float32 patch of seed (a 32-bit varint): r(n) = mix(key + (n + 1) GAMMA). */
  function noisePatch(seed, channels, size) {
    const key = mix(add64([Math.floor(seed / 2 ** 32) >>> 0, seed >>> 0], GAMMA));
    const count = channels * size * size;
    const out = new Float32Array(count);
    let counter = key;
    const twoPi = 2.0 * Math.PI;
    for (let i = 0; i < count; i++) {
      counter = add64(counter, GAMMA);
      const a = mix(counter);
      counter = add64(counter, GAMMA);
      const b = mix(counter);
      // (w >> 11) is a 53-bit integer: hi * 2^21 + (lo >>> 11), exact in a double
      const u1 = (a[0] * 2 ** 21 + (a[1] >>> 11) + 1) * 2 ** -53;
      const u2 = (b[0] * 2 ** 21 + (b[1] >>> 11)) * 2 ** -53;
      out[i] = Math.sqrt(-2.0 * Math.log(u1)) * Math.cos(twoPi * u2);
    }
    return out;
  }

  // ------------------------------------------------------------------ tiles (sampling/tiling.py)

  const ceilDiv = (a, b) => -Math.floor(-a / b);

  /** Tile side, padded canvas side and tile starts along one axis. */
  function axisTiles(length, tile, overlap, multiple, tiling) {
    if (length <= tile) {
      const side = Math.max(ceilDiv(length, multiple) * multiple, Math.min(2 * multiple, tile));
      return { tile: side, canvas: side, starts: [0] };
    }
    const n = ceilDiv(length - overlap, tile - overlap);
    if (tiling === "fitted") tile = Math.min(tile, ceilDiv(length + (n - 1) * overlap, n * multiple) * multiple);
    const span = length - tile;
    const starts = [];
    for (let k = 0; k < n; k++) starts.push(Math.floor((2 * k * span + n - 1) / (2 * (n - 1))));
    return { tile, canvas: length, starts };
  }

  function makeGrid(height, width, tile, overlap, multiple, tiling) {
    const rows = axisTiles(height, tile, overlap, multiple, tiling);
    const cols = axisTiles(width, tile, overlap, multiple, tiling);
    const positions = [];
    for (const y of rows.starts) for (const x of cols.starts) positions.push([y, x]);
    return { height, width, rows, cols, overlap, positions };
  }

  /** For every position of a padded axis, the image position it is read from (canvas_index). */
  function canvasIndex(length, canvas) {
    const out = new Int32Array(canvas);
    const reflect = canvas - length < length;
    for (let i = 0; i < canvas; i++) out[i] = i < length ? i : reflect ? 2 * (length - 1) - i : length - 1;
    return out;
  }

  /** 1-D weights of every tile along an axis: raised-cosine ramps where a neighbour overlaps. */
  function axisWeights(axis, overlap) {
    const ramp = [];
    for (let k = 0; k < overlap; k++) ramp.push(0.5 - 0.5 * Math.cos(Math.PI * ((k + 0.5) / overlap)));
    return axis.starts.map((_, k) => {
      const w = new Float64Array(axis.tile).fill(1);
      if (overlap) {
        if (k > 0) for (let j = 0; j < overlap; j++) w[j] = ramp[j];
        if (k < axis.starts.length - 1) for (let j = 0; j < overlap; j++) w[axis.tile - overlap + j] = ramp[overlap - 1 - j];
      }
      return w;
    });
  }

  /** 2-D float32 weights of every tile, in positions order. */
  function tileWeights(grid) {
    const wy = axisWeights(grid.rows, grid.overlap), wx = axisWeights(grid.cols, grid.overlap);
    const out = [];
    for (const a of wy) {
      for (const b of wx) {
        const w = new Float32Array(a.length * b.length);
        for (let i = 0; i < a.length; i++) for (let j = 0; j < b.length; j++) w[i * b.length + j] = a[i] * b[j];
        out.push(w);
      }
    }
    return out;
  }

  const f32 = Math.fround;

  /** A tile of x~ in [-1, 1] (uint8 / 255 * 2 - 1 in float32), cut from the RGBA picture. */
  function cutTilde(rgba, width, rowIndex, colIndex, y, x, th, tw) {
    const out = new Float32Array(3 * th * tw);
    for (let i = 0; i < th; i++) {
      const row = rowIndex[y + i] * width;
      for (let j = 0; j < tw; j++) {
        const src = 4 * (row + colIndex[x + j]);
        for (let c = 0; c < 3; c++) out[(c * th + i) * tw + j] = f32(f32(f32(rgba[src + c] / 255) * 2) - 1);
      }
    }
    return out;
  }

  /** A tile of the periodic noise x_T (patch[c, y mod P, x mod P]). */
  function cutNoise(patch, size, y, x, th, tw) {
    const out = new Float32Array(3 * th * tw);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < th; i++) {
        const src = (c * size + ((y + i) % size)) * size;
        const dst = (c * th + i) * tw;
        for (let j = 0; j < tw; j++) out[dst + j] = patch[src + ((x + j) % size)];
      }
    }
    return out;
  }

  /** A tile of a (3, CH, CW) canvas. */
  function cutCanvas(canvas, ch, cw, y, x, th, tw) {
    const out = new Float32Array(3 * th * tw);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < th; i++) {
        const src = (c * ch + y + i) * cw + x;
        out.set(canvas.subarray(src, src + tw), (c * th + i) * tw);
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ DDIM (sampling/ddim.py)

  /** t_k = floor((n - k) T / n) - 1. */
  function trailingTimesteps(train, steps) {
    if (!(steps >= 1 && steps <= train)) throw new FormatError(`steps must be in 1..${train}`);
    const out = [];
    for (let k = 0; k < steps; k++) out.push(Math.floor((steps - k) * train / steps) - 1);
    return out;
  }

  /** step_: x_{t_prev} from x_t (sample) and the blended x0, in place, float32 as numpy does. */
  function ddimStep(x0, sample, aT, aPrev) {
    if (aPrev === 1.0) {
      for (let i = 0; i < x0.length; i++) x0[i] = Math.min(Math.max(x0[i], -1), 1);
      return x0;
    }
    const sa = f32(Math.sqrt(aT)), s1a = f32(Math.sqrt(1 - aT)), s1p = f32(Math.sqrt(1 - aPrev)), sp = f32(Math.sqrt(aPrev));
    for (let i = 0; i < x0.length; i++) {
      const x = Math.min(Math.max(x0[i], -1), 1);
      let s = f32(sample[i] - f32(sa * x));
      s = f32(f32(s / s1a) * s1p);
      sample[i] = f32(s + f32(x * sp));
    }
    return sample;
  }

  // ------------------------------------------------------------------ loading the runtime and the weights

  const loaded = {};

  /** Add a classic script beside the page (works from file://); resolves once it ran. */
  function loadScript(src) {
    if (!loaded[src]) {
      loaded[src] = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = src;
        s.onload = () => resolve();
        s.onerror = () => { delete loaded[src]; reject(new Error(`${src} is missing beside the page (write the folder again with cgdm web)`)); };
        document.head.append(s);
      });
    }
    return loaded[src];
  }

  function base64Bytes(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function gunzip(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  let runtime = null;

  /** ONNX Runtime Web, ready: its WASM from ort-wasm-binary.js, its glue module from a blob URL. */
  function loadRuntime(threads) {
    if (!runtime) {
      runtime = (async () => {
        const files = globalThis.CGDM_RUNTIME_FILES || ["ort.wasm.min.js", "ort-wasm-glue.js", "ort-wasm-binary.js"];
        for (const f of files) await loadScript(f);
        const ort = globalThis.ort;
        ort.env.wasm.wasmBinary = await gunzip(base64Bytes(globalThis.CGDM_ORT_WASM));
        ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([globalThis.CGDM_ORT_GLUE], { type: "text/javascript" })) };
        // WebAssembly threads need SharedArrayBuffer, which needs cross-origin isolation
        // (COOP/COEP headers); a page from file:// has one thread.
        const cores = navigator.hardwareConcurrency || 1;
        ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.max(1, Math.min(threads || cores, 8)) : 1;
        ort.env.logLevel = "error";
        return ort;
      })();
      runtime.catch(() => { runtime = null; });
    }
    return runtime;
  }

  const models = {};

  /** The weights of a weights id (hex), as `cgdm web` wrote them: sessions and settings. */
  function loadModel(idHex) {
    if (!models[idHex]) {
      models[idHex] = (async () => {
        const scripts = globalThis.CGDM_MODEL_SCRIPTS || {};
        if (!scripts[idHex]) return null;
        const ort = await loadRuntime();
        await loadScript(scripts[idHex]);
        const m = Object.values(globalThis.CGDM_MODELS || {}).find((r) => r.samplers[idHex]);
        if (!m) throw new Error(`${scripts[idHex]} does not hold weights ${idHex}`);
        const raw = await gunzip(base64Bytes(m.external.data));
        const external = new Uint8Array(m.external.size);
        let at = 0;
        for (const [offset, length] of m.external.ranges) {
          external.set(raw.subarray(at, at + length), offset);
          at += length;
        }
        const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all",
                          externalData: [{ path: m.external.path, data: external }] };
        const sessions = {};
        for (const role of ["condition", "features", "denoise"]) {
          sessions[role] = await ort.InferenceSession.create(await gunzip(base64Bytes(m.graphs[role])), options);
        }
        const table = Int32Array.from(m.prior.table);
        return { ...m, sampler: m.samplers[idHex], alphas_cumprod: m.alphas_cumprod[idHex], sessions, table, ort };
      })();
      models[idHex].catch(() => { delete models[idHex]; });
    }
    return models[idHex];
  }

  const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

  /** Whether the page has the weights a file's full decode needs (and so can run it). */
  function canDecodeFull(file) {
    return file.diffusion && file.baseCodec === 2 && Boolean((globalThis.CGDM_MODEL_SCRIPTS || {})[hexOf(file.weightsId)]);
  }

  // ------------------------------------------------------------------ the full decode

  /** Pillow's RGB -> L (ITU-R 601-2 luma, integer arithmetic). */
  const luma = (r, g, b) => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

  /**
   * The full decode (realism 0) of a parsed AV1 file with the diffusion stage, given its
   * base-only picture (cgdm.decodeBase): {width, height, mode, rgba}, as `cgdm decode`.
   * `progress(done, total)` follows the tiles over all steps.
   */
  async function decodeStage(file, base, { progress, threads } = {}) {
    const id = hexOf(file.weightsId);
    if (!file.diffusion) throw new Error("the file has no diffusion stage");
    if (file.baseCodec !== 2) throw new FormatError(`the diffusion stage of base codec ${file.baseCodec} is not run in the browser yet: use cgdm decode`);
    if (threads) await loadRuntime(threads);
    const model = await loadModel(id);
    if (!model) throw new FormatError(`this page has no weights ${id}: write it again with cgdm web (or use cgdm decode)`);
    const timing = {};
    let t0 = performance.now();
    const symbols = decodeSyntax(model.table, model.prior.rows, model.prior.cols, file.sections.syntax);
    const condition = cgdm.av1Qindex(file.sections.av1, file.width, file.height);
    const { sampler } = model;
    const { width, height } = base;
    const grid = makeGrid(height, width, sampler.tile, sampler.overlap, model.multiple, sampler.tiling);
    const patch = noisePatch(file.seed, 3, sampler.noise_period);
    timing.prepare = performance.now() - t0;
    const timesteps = trailingTimesteps(sampler.train_timesteps, file.steps);
    const alphaBar = (t) => (t < 0 ? 1.0 : model.alphas_cumprod[t]);
    const [th, tw] = [grid.rows.tile, grid.cols.tile];
    const [ch, cw] = [grid.rows.canvas, grid.cols.canvas];
    const rowIndex = canvasIndex(height, ch), colIndex = canvasIndex(width, cw);
    const weights = tileWeights(grid);
    const { ort, sessions } = model;
    const tensor = (data, dims) => new ort.Tensor("float32", data, dims);
    const cache = [];
    const keepFeatures = timesteps.length > 1 && grid.positions.length * th * tw * 4 * 160 <= 768 * 2 ** 20;
    let current = null; // the sample canvas, once a step needs it whole
    const total = grid.positions.length * timesteps.length;
    let done = 0;
    t0 = performance.now();
    for (let s = 0; s < timesteps.length; s++) {
      const t = timesteps[s];
      const feed = {
        t: new ort.Tensor("int64", BigInt64Array.from([BigInt(t)]), [1]),
        syntax: tensor(Float32Array.from(symbols), [1, symbols.length]),
        quality: new ort.Tensor("int64", BigInt64Array.from([BigInt(condition)]), [1]),
      };
      if (model.realism) feed.realism = tensor(new Float32Array([0]), [1]);
      const cond = (await sessions.condition.run(feed)).cond;
      const out = new Float32Array(3 * ch * cw);
      const wsum = new Float32Array(ch * cw);
      for (let k = 0; k < grid.positions.length; k++) {
        const [y, x] = grid.positions[k];
        const tilde = tensor(cutTilde(base.rgba, width, rowIndex, colIndex, y, x, th, tw), [1, 3, th, tw]);
        let feats = cache[k];
        if (!feats) {
          feats = await sessions.features.run({ x_tilde: tilde });
          if (keepFeatures) cache[k] = feats;
        }
        const inputs = { x_tilde: tilde, e0: feats.e0, e1: feats.e1, e2: feats.e2, cond };
        // a network that does not read x_t (cgdm-av1-6 on) has no such graph input
        if (sessions.denoise.inputNames.includes("x_t")) {
          const xt = current ? cutCanvas(current, ch, cw, y, x, th, tw) : cutNoise(patch, sampler.noise_period, y, x, th, tw);
          inputs.x_t = tensor(xt, [1, 3, th, tw]);
        }
        const result = await sessions.denoise.run(inputs);
        const pred = result.x0.data;
        const w = weights[k];
        for (let c = 0; c < 3; c++) {
          for (let i = 0; i < th; i++) {
            const dst = (c * ch + y + i) * cw + x, src = (c * th + i) * tw, wr = i * tw;
            for (let j = 0; j < tw; j++) out[dst + j] = f32(out[dst + j] + f32(pred[src + j] * w[wr + j]));
          }
        }
        for (let i = 0; i < th; i++) {
          const dst = (y + i) * cw + x, wr = i * tw;
          for (let j = 0; j < tw; j++) wsum[dst + j] = f32(wsum[dst + j] + w[wr + j]);
        }
        done++;
        if (progress) progress(done, total);
        await new Promise((r) => setTimeout(r, 0)); // let the page paint its progress
      }
      const plane = ch * cw;
      for (let i = 0; i < out.length; i++) out[i] = f32(out[i] / wsum[i % plane]);
      const aT = alphaBar(t), aPrev = alphaBar(s + 1 < timesteps.length ? timesteps[s + 1] : -1);
      if (!current && aPrev !== 1.0) {
        current = new Float32Array(3 * ch * cw); // x_T whole: the patch repeated over the canvas
        for (let c = 0; c < 3; c++) {
          for (let i = 0; i < ch; i++) {
            const row = (c * sampler.noise_period + (i % sampler.noise_period)) * sampler.noise_period;
            for (let j = 0; j < cw; j++) current[(c * ch + i) * cw + j] = patch[row + (j % sampler.noise_period)];
          }
        }
      }
      current = ddimStep(out, current, aT, aPrev);
    }
    timing.network = performance.now() - t0;
    const rgba = new Uint8ClampedArray(width * height * 4);
    const plane = ch * cw;
    for (let i = 0; i < height; i++) {
      for (let j = 0; j < width; j++) {
        const p = i * width + j;
        for (let c = 0; c < 3; c++) {
          let v = f32(f32(current[c * plane + i * cw + j] + 1) / 2);
          v = f32(Math.min(Math.max(v, 0), 1) * 255);
          let r = Math.round(v);
          if (r - v === 0.5 && r % 2 !== 0) r -= 1; // numpy's rint: half to even
          rgba[4 * p + c] = r;
        }
        rgba[4 * p + 3] = base.rgba[4 * p + 3];
        if (base.mode === "L" || base.mode === "LA") {
          const l = luma(rgba[4 * p], rgba[4 * p + 1], rgba[4 * p + 2]);
          rgba[4 * p] = rgba[4 * p + 1] = rgba[4 * p + 2] = l;
        }
      }
    }
    return { width, height, mode: base.mode, rgba, tiles: grid.positions.length, steps: timesteps.length,
             threads: ort.env.wasm.numThreads, timing };
  }

  /** Parse and decode a file's bytes in full: {file, base, picture}. */
  async function decodeFull(bytes, options) {
    const { file, picture } = await cgdm.decode(bytes);
    if (!file.diffusion) return { file, base: picture, picture };
    return { file, base: picture, picture: await decodeStage(file, picture, options) };
  }

  Object.assign(cgdm, {
    decodeSyntax, categorical, quantileFunction, noisePatch, makeGrid, tileWeights, canvasIndex, trailingTimesteps,
    loadRuntime, loadModel, canDecodeFull, decodeStage, decodeFull,
  });
})();
