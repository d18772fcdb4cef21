// The .cgdm container and its base-only decode, in the browser.
//
// A second implementation of docs/format.md: parse() makes the checks of
// cgdm_codec/container.py in the same order and throws the same one-line messages, so a
// file the Python reader refuses is refused here with the same words. The pictures are
// decoded by the browser itself: an AV1 payload (base codec 2) gets back the AVIF wrapper
// cgdm_codec/base/avif_file.py rebuilds (format.md 9.6), a VP8L payload (base codec 3) the
// 20-byte RIFF header of format.md 9.7. The diffusion stage is not ported: this is the
// base-only decode (cgdm decode --base-only).
//
// A classic script, not an ES module: Chromium refuses module scripts from file:// pages,
// and the page must open from disk. It defines one global, `cgdm`, with the functions below.

(function () {
  "use strict";

  const MAGIC = [0x43, 0x47, 0x44]; // "CGD"
  const FORMAT_VERSION = 1;
  const MAX_DIM = 32768;
  const MAX_PIXELS = 2 ** 26;
  const MAX_U32 = 2 ** 32 - 1;
  const FIXED_HEADER = 10;
  const CRC_BYTES = 4;
  const MIN_FILE_BYTES = FIXED_HEADER + 3 + CRC_BYTES;
  const MAX_METADATA_RECORD = 16 * 2 ** 20;

  /** Base codecs by container id (format.md 3.2): name and section names, in file order. */
  const BASE_CODECS = {
    1: { name: "hyperprior", streams: ["z", "y"] },
    2: { name: "av1", streams: ["av1"] },
    3: { name: "webp-lossless", streams: ["vp8l"], lossless: true },
  };
  const COLOUR_MODES = ["RGB", "L", "RGBA", "LA"];
  const METADATA_KINDS = { 1: "icc", 2: "exif", 3: "xmp" };
  /** Extension record kinds this reader knows (format.md 3.7); kinds 128..255 are optional. */
  const TEXTURE_MAP = 1;
  const EXTENSION_KINDS = { 1: "texture map" };
  const DIFFUSION_EXTENSIONS = new Set([TEXTURE_MAP]);

  /** What the Python reader raises as FormatError: the message is the whole report. */
  class FormatError extends Error {}

  // ------------------------------------------------------------------ CRC-32 (format.md 3.4)

  let crcTable = null;

  /** CRC-32/ISO-HDLC, the one zlib and PNG use (reflected polynomial 0xEDB88320). */
  function crc32(bytes) {
    if (!crcTable) {
      crcTable = new Uint32Array(256);
      for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        crcTable[n] = c >>> 0;
      }
    }
    let crc = 0xffffffff;
    for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
    return (crc ^ 0xffffffff) >>> 0;
  }

  const hex8 = (v) => "0x" + v.toString(16).padStart(8, "0");

  // ------------------------------------------------------------------ varint (format.md 2)

  /** [value, next position] of a canonical LEB128 varint of at most 5 bytes and 32 bits. */
  function decodeVarint(data, pos, what = "varint") {
    let value = 0;
    const start = pos;
    for (let i = 0; i < 5; i++) {
      if (pos >= data.length) throw new FormatError(`truncated file: ${what} at byte ${start} runs past the end`);
      const byte = data[pos++];
      value += (byte & 0x7f) * 2 ** (7 * i); // arithmetic, not <<: 35 bits do not fit an int32
      if (!(byte & 0x80)) {
        if (byte === 0 && i > 0) throw new FormatError(`invalid ${what} at byte ${start}: non-canonical varint encoding`);
        if (value > MAX_U32) throw new FormatError(`invalid ${what} at byte ${start}: value does not fit in 32 bits`);
        return [value, pos];
      }
    }
    throw new FormatError(`invalid ${what} at byte ${start}: varint longer than 5 bytes`);
  }

  // ------------------------------------------------------------------ container (format.md 3, 6)

  function checkDims(width, height) {
    if (!(width >= 1 && width <= MAX_DIM)) throw new FormatError(`invalid width ${width} (must be 1..${MAX_DIM})`);
    if (!(height >= 1 && height <= MAX_DIM)) throw new FormatError(`invalid height ${height} (must be 1..${MAX_DIM})`);
    if (width * height > MAX_PIXELS) {
      throw new FormatError(`image too large: ${width}x${height} = ${width * height} pixels (limit ${MAX_PIXELS})`);
    }
  }

  function checksumMatches(data) {
    const n = data.length;
    return readU32LE(data, n - CRC_BYTES) === crc32(data.subarray(0, n - CRC_BYTES));
  }

  const readU32LE = (d, p) => (d[p] | (d[p + 1] << 8) | (d[p + 2] << 16) | (d[p + 3] << 24)) >>> 0;

  /**
   * Strictly parse a .cgdm file (a Uint8Array) into its fields, or throw a FormatError.
   *
   * As container.parse: a header field that makes no sense in a file whose checksum does not
   * match either is reported as damage, not as a file from a newer cgdm.
   */
  function parse(data) {
    try {
      return parseStrict(data);
    } catch (e) {
      if (e instanceof FormatError && data.length >= MIN_FILE_BYTES && MAGIC.every((b, i) => data[i] === b)
          && !e.message.includes("checksum mismatch") && !checksumMatches(data)) {
        throw new FormatError(`damaged file (checksum mismatch): ${e.message}`);
      }
      throw e;
    }
  }

  function parseStrict(data) {
    const n = data.length;
    // 1. magic (as much of it as there is), 2. minimum length
    for (let i = 0; i < Math.min(n, 3); i++) {
      if (data[i] !== MAGIC[i]) throw new FormatError("not a .cgdm file (bad magic bytes)");
    }
    if (n < MIN_FILE_BYTES) throw new FormatError(`truncated file: ${n} bytes, a .cgdm file has at least ${MIN_FILE_BYTES}`);

    // 3. fixed header
    const version = data[3];
    if (version !== FORMAT_VERSION) {
      throw new FormatError(`unsupported format version ${version} (this cgdm reads version ${FORMAT_VERSION})`);
    }
    const packed = data[4];
    const quality = packed & 0x07;
    if (quality < 1 || quality > 6) throw new FormatError(`invalid quality ${quality} (must be 1..6)`);
    const colourMode = (packed & 0x18) >> 3;
    const diffusion = Boolean(packed & 0x20);
    const hasMetadata = Boolean(packed & 0x40);
    const hasExtensions = Boolean(packed & 0x80);
    const baseCodec = data[5];
    if (!(baseCodec in BASE_CODECS)) {
      throw new FormatError(`unknown base codec id ${baseCodec} (this cgdm knows: ${Object.keys(BASE_CODECS).join(", ")})`);
    }
    const weightsId = data.subarray(6, 10);
    let pos = FIXED_HEADER;

    // 4. dimensions, seed, steps
    let width, height, seed, steps = null;
    [width, pos] = decodeVarint(data, pos, "width");
    if (!(width >= 1 && width <= MAX_DIM)) throw new FormatError(`invalid width ${width} (must be 1..${MAX_DIM})`);
    [height, pos] = decodeVarint(data, pos, "height");
    checkDims(width, height);
    [seed, pos] = decodeVarint(data, pos, "seed");
    if (diffusion) {
      if (pos >= n) throw new FormatError(`truncated file: steps field at byte ${pos} runs past the end`);
      steps = data[pos++];
      if (steps === 0) throw new FormatError("invalid DDIM step count 0 (must be 1..255)");
    }

    // 5. sections: all but the last length-prefixed; the last runs up to the checksum
    const names = [];
    if (diffusion) names.push("syntax");
    if (colourMode >= 2) names.push("alpha");
    if (hasMetadata) names.push("metadata");
    if (hasExtensions) names.push("extensions");
    names.push(...BASE_CODECS[baseCodec].streams);
    const sections = [];
    for (const name of names.slice(0, -1)) {
      let length;
      [length, pos] = decodeVarint(data, pos, `length of section ${name}`);
      const available = n - pos - CRC_BYTES;
      if (length > available) {
        throw new FormatError(`truncated file: section ${name} (${length} bytes) at byte ${pos} runs past the end (${Math.max(available, 0)} bytes left before the checksum)`);
      }
      sections.push(data.subarray(pos, pos + length));
      pos += length;
    }
    if (n - pos < CRC_BYTES) throw new FormatError(`truncated file: checksum at byte ${pos} runs past the end`);
    sections.push(data.subarray(pos, n - CRC_BYTES));
    pos = n - CRC_BYTES;

    // 6. checksum
    const stored = readU32LE(data, pos);
    const computed = crc32(data.subarray(0, pos));
    if (stored !== computed) {
      const what = cutShort(baseCodec, sections[sections.length - 1]) ? "truncated file" : "corrupted file or trailing bytes";
      throw new FormatError(`${what} (checksum mismatch: stored ${hex8(stored)}, computed ${hex8(computed)})`);
    }

    // 7. metadata records (structure here; their zlib data in checkMetadata, which is async),
    //    then what CgdmFile.validate adds
    const named = {};
    names.forEach((name, i) => { named[name] = sections[i]; });
    const metadata = hasMetadata ? parseMetadata(named.metadata) : null;
    const extensions = hasExtensions ? parseExtensions(named.extensions) : [];
    if (diffusion && BASE_CODECS[baseCodec].lossless) {
      throw new FormatError(`base codec ${baseCodec} is lossless: its files have no diffusion stage`);
    }
    for (const { kind } of extensions) {
      if (DIFFUSION_EXTENSIONS.has(kind) && !diffusion) throw new FormatError(`the ${EXTENSION_KINDS[kind]} needs the diffusion stage`);
    }
    return {
      version, quality, colourMode: COLOUR_MODES[colourMode], baseCodec, weightsId, width, height,
      seed, steps, diffusion, sections: named, metadata, extensions, bytes: n,
      framingBytes: n - sections.reduce((sum, s) => sum + s.length, 0),
    };
  }

  /** Whether an AV1 payload ends before its frame OBU does (then a mismatch says "truncated"). */
  function cutShort(baseCodec, last) {
    if (baseCodec !== 2) return false;
    let pos = 0;
    while (pos < last.length) {
      const header = last[pos];
      let size;
      try {
        [size, pos] = readLeb128(last, pos + 1 + ((header >> 2) & 1));
      } catch (e) {
        return true;
      }
      if (((header >> 3) & 0xf) === OBU_FRAME && pos + size <= last.length) return false;
      pos += size;
    }
    return true;
  }

  /** The metadata records' structure (format.md 3.6), with the Python reader's messages. */
  function parseMetadata(section) {
    if (!section.length) throw new FormatError("invalid metadata section: the metadata flag is set but it has no record");
    const records = [];
    let pos = 0, previous = 0;
    const n = section.length;
    while (pos < n) {
      const kind = section[pos];
      if (!(kind in METADATA_KINDS)) throw new FormatError(`invalid metadata section: unknown record kind ${kind} at byte ${pos}`);
      const name = METADATA_KINDS[kind];
      if (kind <= previous) {
        throw new FormatError(`invalid metadata section: record ${name} is repeated or out of order (icc, exif, xmp, each at most once)`);
      }
      previous = kind;
      let size, zlen;
      try {
        [size, pos] = decodeVarint(section, pos + 1, `size of metadata record ${name}`);
        [zlen, pos] = decodeVarint(section, pos, `zlib length of metadata record ${name}`);
      } catch (e) {
        throw new FormatError(`invalid metadata section: ${e.message}`);
      }
      if (size < 1 || size > MAX_METADATA_RECORD) {
        throw new FormatError(`invalid metadata section: record ${name} declares ${size} bytes (must be 1..${MAX_METADATA_RECORD})`);
      }
      if (zlen > n - pos) {
        throw new FormatError(`invalid metadata section: record ${name} (${zlen} bytes) runs past the end of the section (${n - pos} bytes left)`);
      }
      records.push({ name, size, data: section.subarray(pos, pos + zlen) });
      pos += zlen;
    }
    return records;
  }

  /** The extensions section's records (format.md 3.7), with the Python reader's messages. */
  function parseExtensions(section) {
    if (!section.length) throw new FormatError("invalid extensions section: the extensions flag is set but it has no record");
    const records = [];
    let pos = 0, previous = 0;
    const n = section.length;
    while (pos < n) {
      const kind = section[pos];
      if (kind === 0 || (kind < 128 && !(kind in EXTENSION_KINDS))) {
        throw new FormatError(`invalid extensions section: unknown record kind ${kind} at byte ${pos} (written by a newer cgdm?)`);
      }
      if (kind <= previous) throw new FormatError(`invalid extensions section: record kind ${kind} is repeated or out of order`);
      previous = kind;
      let length;
      try {
        [length, pos] = decodeVarint(section, pos + 1, `length of extension record ${kind}`);
      } catch (e) {
        throw new FormatError(`invalid extensions section: ${e.message}`);
      }
      if (length > n - pos) {
        throw new FormatError(`invalid extensions section: record kind ${kind} (${length} bytes) runs past the end of the section (${n - pos} bytes left)`);
      }
      records.push({ kind, name: EXTENSION_KINDS[kind] || `kind ${kind}`, data: section.subarray(pos, pos + length) });
      pos += length;
    }
    return records;
  }

  /**
   * Inflate a zlib stream (RFC 1950) with DecompressionStream('deflate'), stopping once more
   * than `limit` bytes came out, so a small hostile section cannot balloon memory.
   * Resolves to the bytes, or null when the stream is invalid.
   */
  async function inflate(bytes, limit) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    const reader = stream.getReader();
    const out = new Uint8Array(limit + 1);
    let length = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const take = Math.min(value.length, out.length - length);
        out.set(value.subarray(0, take), length);
        length += take;
        if (length > limit) {
          await reader.cancel();
          break;
        }
      }
    } catch (e) {
      return null;
    }
    return out.subarray(0, length);
  }

  /** The checks of container.decode_metadata that need the records inflated. */
  async function checkMetadata(records) {
    for (const r of records || []) {
      const raw = await inflate(r.data, r.size);
      if (raw === null) throw new FormatError(`metadata record ${r.name} is corrupted (bad zlib data)`);
      if (raw.length !== r.size) throw new FormatError(`metadata record ${r.name} does not inflate to exactly its declared ${r.size} bytes`);
      const tiff = raw.length >= 4 && ((raw[0] === 0x49 && raw[1] === 0x49 && raw[2] === 0x2a && raw[3] === 0)
        || (raw[0] === 0x4d && raw[1] === 0x4d && raw[2] === 0 && raw[3] === 0x2a));
      if (r.name === "exif" && !tiff) {
        throw new FormatError("metadata exif must be a TIFF structure starting with II*\\0 or MM\\0* (without the Exif\\0\\0 prefix)");
      }
    }
  }

  // ------------------------------------------------------------------ AV1 payload (format.md 9.6)

  const OBU_SEQUENCE_HEADER = 1, OBU_FRAME_HEADER = 3, OBU_TILE_GROUP = 4, OBU_FRAME = 6;

  /** A payload the AVIF wrapper cannot be rebuilt around (cgdm_codec.base.av1_bitstream.Av1Error). */
  class Av1Error extends Error {}

  function readLeb128(data, pos) {
    let value = 0;
    for (let i = 0; i < 8; i++) {
      if (pos >= data.length) throw new Av1Error("truncated OBU size");
      const b = data[pos++];
      value += (b & 0x7f) * 2 ** (7 * i);
      if (!(b & 0x80)) return [value, pos];
    }
    throw new Av1Error("OBU size longer than 8 bytes");
  }

  /** The OBUs of a low-overhead bitstream (each with its size field), as av1_bitstream.split_obus. */
  function splitObus(data) {
    const obus = [];
    let pos = 0;
    while (pos < data.length) {
      const h = data[pos++];
      if (h & 0x80) throw new Av1Error("forbidden bit set in an OBU header");
      const type = (h >> 3) & 0xf, ext = (h >> 2) & 1, hasSize = (h >> 1) & 1;
      if (ext) {
        if (pos >= data.length) throw new Av1Error("truncated OBU header");
        pos++;
      }
      if (!hasSize) throw new Av1Error("OBU without a size field");
      let size;
      [size, pos] = readLeb128(data, pos);
      if (size > data.length - pos) throw new Av1Error("OBU runs past the end of the payload");
      obus.push({ type, ext, payload: data.subarray(pos, pos + size) });
      pos += size;
    }
    return obus;
  }

  /** MSB-first bit reader; reading past the end is an error, never a zero. */
  class BitReader {
    constructor(data) { this.data = data; this.pos = 0; }
    f(n) {
      let v = 0;
      for (let i = 0; i < n; i++) {
        const byte = this.pos >> 3;
        if (byte >= this.data.length) throw new Av1Error("header runs past the end of its OBU");
        v = v * 2 + ((this.data[byte] >> (7 - (this.pos & 7))) & 1);
        this.pos++;
      }
      return v;
    }
    uvlc() {
      let zeros = 0;
      while (!this.f(1)) if (++zeros >= 32) throw new Av1Error("invalid uvlc");
      return this.f(zeros) + 2 ** zeros - 1;
    }
  }

  const KEY_FRAME = 0, INTRA_ONLY_FRAME = 2, SWITCH_FRAME = 3, SELECT = 2;
  const MAX_TILE_WIDTH = 4096, MAX_TILE_AREA = 4096 * 2304, MAX_TILE_COLS = 64, MAX_TILE_ROWS = 64;

  /** The sequence-header fields the av1C, pixi and colr boxes and the frame header need (AV1 spec 5.5). */
  function parseSequenceHeader(payload) {
    const r = new BitReader(payload);
    const profile = r.f(3), still = r.f(1), reduced = r.f(1);
    if (profile > 2) throw new Av1Error(`invalid AV1 profile ${profile}`);
    let level0 = 0, tier0 = 0, decoderModel = 0, equalInterval = 0, delayLen = 0, removalLen = 0, presentationLen = 0;
    const modelOps = [];
    if (reduced) {
      level0 = r.f(5);
    } else {
      if (r.f(1)) { // timing_info_present_flag
        r.f(32); r.f(32);
        equalInterval = r.f(1);
        if (equalInterval) r.uvlc();
        decoderModel = r.f(1);
        if (decoderModel) { delayLen = r.f(5) + 1; r.f(32); removalLen = r.f(5) + 1; presentationLen = r.f(5) + 1; }
      }
      const initialDelay = r.f(1);
      const count = r.f(5) + 1;
      for (let i = 0; i < count; i++) {
        const idc = r.f(12);
        const level = r.f(5);
        const tier = level > 7 ? r.f(1) : 0;
        if (i === 0) { level0 = level; tier0 = tier; }
        if (decoderModel && r.f(1)) { modelOps.push(idc); r.f(delayLen); r.f(delayLen); r.f(1); }
        if (initialDelay && r.f(1)) r.f(4);
      }
    }
    const wbits = r.f(4) + 1, hbits = r.f(4) + 1;
    const maxW = r.f(wbits) + 1, maxH = r.f(hbits) + 1;
    const frameIds = reduced ? 0 : r.f(1);
    let idLen = 0;
    if (frameIds) { const deltaLen = r.f(4) + 2; idLen = r.f(3) + 1 + deltaLen; }
    const sb128 = r.f(1);
    r.f(1); r.f(1); // filter intra, intra edge filter
    let orderHint = 0, orderBits = 0, forceSct = SELECT, forceMv = SELECT;
    if (!reduced) {
      r.f(4); // interintra, masked compound, warped motion, dual filter
      orderHint = r.f(1);
      if (orderHint) { r.f(1); r.f(1); }
      forceSct = r.f(1) ? SELECT : r.f(1);
      if (forceSct > 0) forceMv = r.f(1) ? SELECT : r.f(1);
      if (orderHint) orderBits = r.f(3) + 1;
    }
    const superres = r.f(1);
    r.f(1); r.f(1); // cdef, restoration
    // color_config()
    const high = r.f(1);
    const twelve = profile === 2 && high ? r.f(1) : 0;
    const bitDepth = twelve ? 12 : high ? 10 : 8;
    const mono = profile === 1 ? 0 : r.f(1);
    const desc = r.f(1);
    let cp = 2, tc = 2, mc = 2;
    if (desc) { cp = r.f(8); tc = r.f(8); mc = r.f(8); }
    let range, sx, sy, csp = 0;
    if (mono) {
      range = r.f(1); sx = 1; sy = 1;
    } else if (cp === 1 && tc === 13 && mc === 0) {
      range = 1; sx = 0; sy = 0;
    } else {
      range = r.f(1);
      if (profile === 0) { sx = 1; sy = 1; } else if (profile === 1) { sx = 0; sy = 0; } else if (bitDepth === 12) {
        sx = r.f(1); sy = sx ? r.f(1) : 0;
      } else { sx = 1; sy = 0; }
      if (sx && sy) csp = r.f(2);
    }
    return {
      profile, still, reduced, level0, tier0, maxW, maxH, wbits, hbits, frameIds, idLen, sb128, orderHint, orderBits,
      forceSct, forceMv, superres, high, twelve, bitDepth, mono, cp, tc, mc, range, sx, sy, csp,
      decoderModel, equalInterval, presentationLen, removalLen, modelOps,
    };
  }

  const tileLog2 = (blk, target) => { let k = 0; while (blk * 2 ** k < target) k++; return k; };

  /** ns(n) of the AV1 spec (4.10.7). */
  function readNs(r, n) {
    const w = Math.floor(Math.log2(n)) + 1;
    const m = 2 ** w - n;
    const v = r.f(w - 1);
    return v < m ? v : v * 2 - m + r.f(1);
  }

  /** Walk tile_info() (AV1 spec 5.9.15): only to reach the quantiser behind it. */
  function skipTileInfo(r, seq, miCols, miRows) {
    const sbShift = seq.sb128 ? 5 : 4;
    const sbCols = (miCols + (1 << sbShift) - 1) >> sbShift, sbRows = (miRows + (1 << sbShift) - 1) >> sbShift;
    const sbSize = sbShift + 2;
    const maxWidthSb = MAX_TILE_WIDTH >> sbSize, maxAreaSb = MAX_TILE_AREA >> (2 * sbSize);
    const minColsLog2 = tileLog2(maxWidthSb, sbCols);
    const maxColsLog2 = tileLog2(1, Math.min(sbCols, MAX_TILE_COLS)), maxRowsLog2 = tileLog2(1, Math.min(sbRows, MAX_TILE_ROWS));
    const minTilesLog2 = Math.max(minColsLog2, tileLog2(maxAreaSb, sbRows * sbCols));
    let colsLog2, rowsLog2;
    if (r.f(1)) { // uniform_tile_spacing_flag
      colsLog2 = minColsLog2;
      while (colsLog2 < maxColsLog2 && r.f(1)) colsLog2++;
      rowsLog2 = Math.max(minTilesLog2 - colsLog2, 0);
      while (rowsLog2 < maxRowsLog2 && r.f(1)) rowsLog2++;
    } else {
      let widest = 0, start = 0, cols = 0;
      while (start < sbCols) {
        const size = readNs(r, Math.min(sbCols - start, maxWidthSb)) + 1;
        widest = Math.max(widest, size); start += size; cols++;
      }
      colsLog2 = tileLog2(1, cols);
      const area = minTilesLog2 > 0 ? (sbRows * sbCols) >> (minTilesLog2 + 1) : sbRows * sbCols;
      const maxHeightSb = Math.max(Math.floor(area / widest), 1);
      let rows = 0;
      start = 0;
      while (start < sbRows) { start += readNs(r, Math.min(sbRows - start, maxHeightSb)) + 1; rows++; }
      rowsLog2 = tileLog2(1, rows);
    }
    if (colsLog2 || rowsLog2) { r.f(colsLog2 + rowsLog2); r.f(2); }
  }

  /**
   * uncompressed_header() of an intra frame up to base_q_idx (AV1 spec 5.9), as
   * cgdm_codec/base/av1_bitstream.parse_frame_header: {frameType, width, height, qindex}.
   * The qindex is what the diffusion stage is conditioned on.
   */
  function parseFrameHeader(payload, seq) {
    const r = new BitReader(payload);
    let frameType, showFrame, errorResilient;
    if (seq.reduced) {
      frameType = KEY_FRAME; showFrame = 1; errorResilient = 1;
    } else {
      if (r.f(1)) throw new Av1Error("a still picture cannot show an existing frame");
      frameType = r.f(2); showFrame = r.f(1);
      if (showFrame && seq.decoderModel && !seq.equalInterval) r.f(seq.presentationLen);
      if (!showFrame) r.f(1);
      errorResilient = frameType === SWITCH_FRAME || (frameType === KEY_FRAME && showFrame) ? 1 : r.f(1);
    }
    if (frameType !== KEY_FRAME && frameType !== INTRA_ONLY_FRAME) throw new Av1Error("the AV1 frame is not an intra frame");
    const disableCdfUpdate = r.f(1);
    const sct = seq.forceSct === SELECT ? r.f(1) : seq.forceSct;
    if (sct && seq.forceMv === SELECT) r.f(1);
    if (seq.frameIds) r.f(seq.idLen);
    const override = frameType === SWITCH_FRAME ? 1 : seq.reduced ? 0 : r.f(1);
    r.f(seq.orderBits);
    if (seq.decoderModel && r.f(1)) {
      for (const idc of seq.modelOps) if (idc === 0 || ((idc & 1) && ((idc >> 8) & 1))) r.f(seq.removalLen);
    }
    if (!(frameType === KEY_FRAME && showFrame)) {
      const refresh = r.f(8);
      if (refresh !== 0xff && errorResilient && seq.orderHint) for (let i = 0; i < 8; i++) r.f(seq.orderBits);
    }
    let width = seq.maxW, height = seq.maxH;
    if (override) { width = r.f(seq.wbits) + 1; height = r.f(seq.hbits) + 1; }
    if (seq.superres && r.f(1)) throw new Av1Error("superres frames are not supported");
    if (r.f(1)) { r.f(16); r.f(16); }
    if (sct) r.f(1);
    if (!(seq.reduced || disableCdfUpdate)) r.f(1);
    skipTileInfo(r, seq, 2 * ((width + 7) >> 3), 2 * ((height + 7) >> 3));
    return { frameType, width, height, qindex: r.f(8) };
  }

  /** The sequence header of a payload that is one AV1 still picture of width x height. */
  function checkAv1Payload(payload, width, height) {
    const obus = splitObus(payload);
    if (!obus.length || obus[0].type !== OBU_SEQUENCE_HEADER) throw new Av1Error("the AV1 payload does not start with a sequence header OBU");
    if (obus.some((o) => o.ext)) throw new Av1Error("the AV1 payload has OBU extension headers (a layered stream)");
    const kinds = obus.slice(1).map((o) => o.type);
    const frameThenTiles = kinds.length >= 2 && kinds[0] === OBU_FRAME_HEADER && kinds.slice(1).every((k) => k === OBU_TILE_GROUP);
    if (!(kinds.length === 1 && kinds[0] === OBU_FRAME) && !frameThenTiles) {
      throw new Av1Error(`the sequence header is not followed by exactly one frame (OBU types [${obus.map((o) => o.type).join(", ")}])`);
    }
    const seq = parseSequenceHeader(obus[0].payload);
    if (!seq.still) throw new Av1Error("the AV1 payload is not a still picture");
    if (seq.maxW !== width || seq.maxH !== height) {
      throw new Av1Error(`the sequence header is for ${seq.maxW}x${seq.maxH}, not ${width}x${height}`);
    }
    const frame = parseFrameHeader(obus[1].payload, seq);
    if (frame.width !== width || frame.height !== height) {
      throw new Av1Error(`the AV1 frame is ${frame.width}x${frame.height}, not ${width}x${height}`);
    }
    seq.qindex = frame.qindex;
    return seq;
  }

  /** The diffusion stage's condition of an AV1 payload: its frame's base_q_idx (0..255). */
  function av1Qindex(payload, width, height) {
    return checkAv1Payload(payload, width, height).qindex;
  }

  /** Big-endian byte writer for ISOBMFF boxes. */
  class Bytes {
    constructor() { this.parts = []; }
    u8(...vs) { this.parts.push(...vs.map((v) => v & 0xff)); return this; }
    u16(v) { return this.u8(v >>> 8, v); }
    u32(v) { return this.u8(v >>> 24, v >>> 16, v >>> 8, v); }
    ascii(s) { for (const c of s) this.parts.push(c.charCodeAt(0)); return this; }
    raw(bytes) { for (const b of bytes) this.parts.push(b); return this; }
    get length() { return this.parts.length; }
  }

  const box = (kind, body) => new Bytes().u32(8 + body.length).ascii(kind).raw(body.parts || body);
  const fullBox = (kind, version, flags, body) => box(kind, new Bytes().u32(version * 2 ** 24 + flags).raw(body.parts));

  /** libavif 1.4 adds MA1B for 8/10-bit 4:2:0, MA1A for 8/10-bit 4:4:4, else nothing. */
  function profileBrand(seq) {
    if ((seq.bitDepth !== 8 && seq.bitDepth !== 10) || seq.mono) return "";
    if (seq.sx && seq.sy) return "MA1B";
    if (!seq.sx && !seq.sy) return "MA1A";
    return "";
  }

  /**
   * The AVIF file libavif 1.4 writes around these AV1 OBUs, byte for byte as
   * cgdm_codec/base/avif_file.build_avif rebuilds it (format.md 9.6): the ftyp and meta boxes,
   * then mdat holding a temporal delimiter and the payload.
   */
  function buildAvif(payload, width, height) {
    const seq = checkAv1Payload(payload, width, height);
    const ftyp = box("ftyp", new Bytes().ascii("avif").u32(0).ascii("avifmif1miaf" + profileBrand(seq)));
    const channels = seq.mono ? 1 : 3;
    const [cp, tc, mc] = [seq.cp, seq.tc, seq.mc];
    const pixi = new Bytes().u8(channels);
    for (let i = 0; i < channels; i++) pixi.u8(seq.bitDepth);
    const av1c = new Bytes().u8(0x81, (seq.profile << 5) | seq.level0,
      (seq.tier0 << 7) | (seq.high << 6) | (seq.twelve << 5) | (seq.mono << 4) | (seq.sx << 3) | (seq.sy << 2) | seq.csp, 0);
    const ipco = box("ipco", new Bytes()
      .raw(fullBox("ispe", 0, 0, new Bytes().u32(width).u32(height)).parts)
      .raw(fullBox("pixi", 0, 0, pixi).parts)
      .raw(box("av1C", av1c).parts)
      .raw(box("colr", new Bytes().ascii("nclx").u16(cp).u16(tc).u16(mc).u8(seq.range << 7)).parts));
    const ipma = fullBox("ipma", 0, 0, new Bytes().u32(1).u16(1).u8(4).u8(0x01, 0x02, 0x83, 0x04));
    const itemLength = 2 + payload.length;
    const meta = (itemOffset) => fullBox("meta", 0, 0, new Bytes()
      .raw(fullBox("hdlr", 0, 0, new Bytes().u32(0).ascii("pict").raw(new Uint8Array(13))).parts)
      .raw(fullBox("pitm", 0, 0, new Bytes().u16(1)).parts)
      .raw(fullBox("iloc", 0, 0, new Bytes().u8(0x44, 0x00).u16(1).u16(1).u16(0).u16(1).u32(itemOffset).u32(itemLength)).parts)
      .raw(fullBox("iinf", 0, 0, new Bytes().u16(1).raw(
        fullBox("infe", 2, 0, new Bytes().u16(1).u16(0).ascii("av01").ascii("Color\0")).parts)).parts)
      .raw(box("iprp", new Bytes().raw(ipco.parts).raw(ipma.parts)).parts));
    const itemOffset = ftyp.length + meta(0).length + 8;
    if (itemOffset + itemLength > MAX_U32) throw new Av1Error("the AV1 payload is too large for a 32-bit AVIF file");
    const head = new Bytes().raw(ftyp.parts).raw(meta(itemOffset).parts).u32(8 + itemLength).ascii("mdat").u8(0x12, 0x00);
    const out = new Uint8Array(head.length + payload.length);
    out.set(head.parts, 0);
    out.set(payload, head.length);
    return out;
  }

  // ------------------------------------------------------------------ VP8L payload (format.md 9.7)

  /** The WebP file of a VP8L bitstream: RIFF header, the section, a pad byte to an even size. */
  function buildWebp(payload, width, height) {
    if (payload.length < 5 || payload[0] !== 0x2f) throw new Av1Error("the payload is not a VP8L bitstream (signature 0x2f)");
    if (payload.length > MAX_U32 - 20) throw new Av1Error("the VP8L payload is too large for a 32-bit RIFF file");
    const bits = readU32LE(payload, 1);
    const w = (bits & 0x3fff) + 1, h = ((bits >>> 14) & 0x3fff) + 1;
    if (bits >>> 29) throw new Av1Error(`unknown VP8L version ${bits >>> 29}`);
    if ((bits >>> 28) & 1) throw new Av1Error("the VP8L payload has alpha (alpha has its own section)");
    if (w !== width || h !== height) throw new Av1Error(`the VP8L payload is ${w}x${h}, not ${width}x${height}`);
    const pad = payload.length % 2;
    const out = new Uint8Array(20 + payload.length + pad);
    const le = (p, v) => { out[p] = v; out[p + 1] = v >>> 8; out[p + 2] = v >>> 16; out[p + 3] = v >>> 24; };
    out.set([0x52, 0x49, 0x46, 0x46], 0); // RIFF
    le(4, 12 + payload.length + pad);
    out.set([0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x4c], 8); // WEBPVP8L
    le(16, payload.length);
    out.set(payload, 20);
    return out;
  }

  // ------------------------------------------------------------------ the decode

  /** The browser's own image decoder: RGBA bytes of an encoded picture, no colour conversion. */
  async function decodeImage(bytes, type, width, height) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(new Blob([bytes], { type }),
        { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    } catch (e) {
      throw new Av1Error(`the browser does not decode it (${e.message || e.name})`);
    }
    if (bitmap.width !== width || bitmap.height !== height) {
      throw new Av1Error(`the browser decoded ${bitmap.width}x${bitmap.height}, not ${width}x${height}`);
    }
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    return ctx.getImageData(0, 0, width, height).data;
  }

  /** Gray from the decoded RGB (the three channels of a 4:0:0 or L picture are equal). */
  function toGray(rgba) {
    for (let i = 0; i < rgba.length; i += 4) {
      rgba[i + 1] = rgba[i];
      rgba[i + 2] = rgba[i];
    }
  }

  /**
   * The base-only decode of a parsed file: {width, height, mode, rgba} where rgba holds
   * width x height x 4 bytes, not premultiplied (alpha 255 without an alpha section).
   * Throws a FormatError with one line, as `cgdm decode --base-only` would.
   */
  async function decodeBase(file) {
    const codec = BASE_CODECS[file.baseCodec];
    const { width, height } = file;
    await checkMetadata(file.metadata);
    let rgba;
    if (codec.name === "av1" || codec.name === "webp-lossless") {
      try {
        rgba = codec.name === "av1"
          ? await decodeImage(buildAvif(file.sections.av1, width, height), "image/avif", width, height)
          : await decodeImage(buildWebp(file.sections.vp8l, width, height), "image/webp", width, height);
      } catch (e) {
        if (e instanceof Av1Error) throw new FormatError(`base-codec stream is corrupted (${e.message})`);
        throw e;
      }
    } else {
      throw new FormatError(`base codec ${codec.name} (${file.baseCodec}) is not decoded in the browser yet: use cgdm decode`);
    }
    if (file.colourMode === "L" || file.colourMode === "LA") toGray(rgba);
    if (file.sections.alpha) await applyAlpha(rgba, file.sections.alpha, width * height);
    return { width, height, mode: file.colourMode, rgba };
  }

  /** The alpha section (zlib, width x height bytes, format.md 3.3) into every 4th byte. */
  async function applyAlpha(rgba, section, count) {
    const alpha = await inflate(section, count);
    if (alpha === null) throw new FormatError("alpha section is corrupted");
    if (alpha.length !== count) throw new FormatError("alpha section has the wrong size");
    for (let i = 0; i < count; i++) rgba[4 * i + 3] = alpha[i];
  }

  /** Parse and decode a .cgdm file's bytes: {file, picture}. */
  async function decode(bytes) {
    const file = parse(bytes);
    return { file, picture: await decodeBase(file) };
  }

  /** The `cgdm info` fields of a parsed file (names as in `cgdm info --json`). */
  function info(file, weightsNames = {}) {
    const hex = Array.from(file.weightsId, (b) => b.toString(16).padStart(2, "0")).join("");
    const sections = {};
    for (const [name, s] of Object.entries(file.sections)) sections[name] = s.length;
    return {
      width: file.width, height: file.height, colour_mode: file.colourMode,
      quality: BASE_CODECS[file.baseCodec].lossless ? "lossless (exact pixels)" : file.quality,
      base_codec: BASE_CODECS[file.baseCodec].name, base_codec_id: file.baseCodec,
      weights_id: hex, weights: weightsNames[hex] || null,
      bytes: file.bytes, bpp: Math.round((8 * file.bytes / (file.width * file.height)) * 1e4) / 1e4,
      framing_bytes: file.framingBytes, diffusion: file.diffusion, steps: file.steps, seed: file.seed,
      sections,
      metadata: Object.fromEntries((file.metadata || []).map((r) => [r.name, r.size])),
      extensions: Object.fromEntries((file.extensions || []).map((r) => [r.name, r.data.length])),
    };
  }

  globalThis.cgdm = {
    FormatError, Av1Error, BASE_CODECS, COLOUR_MODES, MIN_FILE_BYTES, crc32, decodeVarint, parse,
    inflate, checkMetadata, splitObus, parseSequenceHeader, parseFrameHeader, av1Qindex, buildAvif, buildWebp, decodeBase, decode, info,
  };
})();
