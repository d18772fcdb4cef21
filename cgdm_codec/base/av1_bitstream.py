"""Just enough of the AV1 bitstream (AV1 spec, sections 5.3-5.9) to check a payload and read its quantiser.

The AV1 base stores a still picture as a run of OBUs. Before any of it reaches libavif the
decoder checks here that it is exactly one sequence header and one intra frame of the
container's size (so a hostile payload cannot make the AV1 decoder allocate a frame larger
than the header promised), and reads the frame's ``base_q_idx``: the quantiser the
diffusion stage is conditioned on, whatever quality setting produced it. Standard library
only, so checking a file never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

OBU_SEQUENCE_HEADER = 1
OBU_TEMPORAL_DELIMITER = 2
OBU_FRAME_HEADER = 3
OBU_TILE_GROUP = 4
OBU_METADATA = 5
OBU_FRAME = 6
OBU_PADDING = 15

KEY_FRAME, INTRA_ONLY_FRAME, SWITCH_FRAME = 0, 2, 3
SELECT_SCREEN_CONTENT_TOOLS = SELECT_INTEGER_MV = 2
MAX_TILE_WIDTH, MAX_TILE_AREA, MAX_TILE_COLS, MAX_TILE_ROWS = 4096, 4096 * 2304, 64, 64
# BT.709 primaries + sRGB transfer + identity matrix implies 4:4:4 full range (spec 5.5.2).
CP_BT_709, TC_SRGB, MC_IDENTITY = 1, 13, 0


class Av1Error(ValueError):
    """The payload is not a well-formed AV1 still picture of the expected kind."""


class BitReader:
    """MSB-first bit reader over bytes; reading past the end is an error, never a zero."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def f(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise Av1Error("header runs past the end of its OBU")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.f(1):
            zeros += 1
            if zeros >= 32:
                raise Av1Error("invalid uvlc")
        return self.f(zeros) + (1 << zeros) - 1

    def ns(self, n: int) -> int:
        w = n.bit_length()  # FloorLog2(n) + 1
        m = (1 << w) - n
        v = self.f(w - 1)
        return v if v < m else (v << 1) - m + self.f(1)


def read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    """(value, new position) of an unsigned LEB128 of at most 8 bytes (spec 4.10.5)."""
    value = 0
    for i in range(8):
        if pos >= len(data):
            raise Av1Error("truncated OBU size")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value, pos
    raise Av1Error("OBU size longer than 8 bytes")


@dataclass(frozen=True)
class Obu:
    type: int
    header: bytes  # the OBU header bytes (1, or 2 with the extension byte), without the size
    payload: bytes
    temporal_id: int = 0
    spatial_id: int = 0


def split_obus(data: bytes) -> list[Obu]:
    """The OBUs of a low-overhead bitstream; every OBU must carry its size field."""
    obus, pos = [], 0
    while pos < len(data):
        start = pos
        h = data[pos]
        pos += 1
        if h & 0x80:
            raise Av1Error("forbidden bit set in an OBU header")
        obu_type, ext, has_size = (h >> 3) & 0xF, (h >> 2) & 1, (h >> 1) & 1
        tid = sid = 0
        if ext:
            if pos >= len(data):
                raise Av1Error("truncated OBU header")
            tid, sid = data[pos] >> 5, (data[pos] >> 3) & 3
            pos += 1
        if not has_size:
            raise Av1Error("OBU without a size field")
        header = data[start:pos]
        size, pos = read_leb128(data, pos)
        if size > len(data) - pos:
            raise Av1Error("OBU runs past the end of the payload")
        obus.append(Obu(obu_type, header, data[pos:pos + size], tid, sid))
        pos += size
    return obus


@dataclass(frozen=True)
class SequenceHeader:
    """The sequence-header fields a still-picture decoder (and the av1C box) needs."""

    seq_profile: int
    still_picture: int
    reduced_still_picture_header: int
    seq_level_idx_0: int
    seq_tier_0: int
    max_frame_width: int
    max_frame_height: int
    frame_width_bits: int
    frame_height_bits: int
    frame_id_numbers_present: int
    frame_id_length: int
    use_128x128_superblock: int
    enable_order_hint: int
    order_hint_bits: int
    seq_force_screen_content_tools: int
    seq_force_integer_mv: int
    enable_superres: int
    high_bitdepth: int
    twelve_bit: int
    bit_depth: int
    mono_chrome: int
    color_description_present: int
    color_primaries: int
    transfer_characteristics: int
    matrix_coefficients: int
    color_range: int
    subsampling_x: int
    subsampling_y: int
    chroma_sample_position: int
    film_grain_params_present: int
    decoder_model_info_present: int
    equal_picture_interval: int
    frame_presentation_time_length: int
    buffer_removal_time_length: int
    decoder_model_ops: tuple[int, ...]  # operating_point_idc of ops with a decoder model


def parse_sequence_header(payload: bytes) -> SequenceHeader:
    r = BitReader(payload)
    seq_profile, still, reduced = r.f(3), r.f(1), r.f(1)
    if seq_profile > 2:
        raise Av1Error(f"invalid AV1 profile {seq_profile}")
    decoder_model_info = equal_interval = 0
    buffer_delay_len = removal_len = presentation_len = 0
    model_ops: list[int] = []
    tier0 = 0
    if reduced:
        level0 = r.f(5)
    else:
        if r.f(1):  # timing_info_present_flag
            r.f(32), r.f(32)
            equal_interval = r.f(1)
            if equal_interval:
                r.uvlc()
            decoder_model_info = r.f(1)
            if decoder_model_info:
                buffer_delay_len = r.f(5) + 1
                r.f(32)
                removal_len, presentation_len = r.f(5) + 1, r.f(5) + 1
        initial_display_delay = r.f(1)
        level0 = None
        for _ in range(r.f(5) + 1):
            idc, level = r.f(12), r.f(5)
            tier = r.f(1) if level > 7 else 0
            if level0 is None:
                level0, tier0 = level, tier
            if decoder_model_info and r.f(1):
                model_ops.append(idc)
                r.f(buffer_delay_len), r.f(buffer_delay_len), r.f(1)
            if initial_display_delay and r.f(1):
                r.f(4)
    wbits, hbits = r.f(4) + 1, r.f(4) + 1
    max_w, max_h = r.f(wbits) + 1, r.f(hbits) + 1
    frame_ids = 0 if reduced else r.f(1)
    id_len = 0
    if frame_ids:
        delta_len = r.f(4) + 2
        id_len = r.f(3) + 1 + delta_len
    sb128 = r.f(1)
    r.f(1), r.f(1)  # enable_filter_intra, enable_intra_edge_filter
    order_hint = order_bits = 0
    force_sct, force_mv = SELECT_SCREEN_CONTENT_TOOLS, SELECT_INTEGER_MV
    if not reduced:
        r.f(1), r.f(1), r.f(1), r.f(1)  # interintra, masked compound, warped motion, dual filter
        order_hint = r.f(1)
        if order_hint:
            r.f(1), r.f(1)  # jnt_comp, ref_frame_mvs
        force_sct = SELECT_SCREEN_CONTENT_TOOLS if r.f(1) else r.f(1)
        if force_sct > 0:
            force_mv = SELECT_INTEGER_MV if r.f(1) else r.f(1)
        if order_hint:
            order_bits = r.f(3) + 1
    superres = r.f(1)
    r.f(1), r.f(1)  # enable_cdef, enable_restoration
    # color_config()
    high, twelve = r.f(1), 0
    if seq_profile == 2 and high:
        twelve = r.f(1)
    bit_depth = 12 if twelve else (10 if high else 8)
    mono = 0 if seq_profile == 1 else r.f(1)
    desc = r.f(1)
    cp = tc = mc = 2
    if desc:
        cp, tc, mc = r.f(8), r.f(8), r.f(8)
    csp = 0
    if mono:
        crange, sx, sy = r.f(1), 1, 1
    elif cp == CP_BT_709 and tc == TC_SRGB and mc == MC_IDENTITY:
        crange, sx, sy = 1, 0, 0
    else:
        crange = r.f(1)
        if seq_profile == 0:
            sx, sy = 1, 1
        elif seq_profile == 1:
            sx, sy = 0, 0
        elif bit_depth == 12:
            sx = r.f(1)
            sy = r.f(1) if sx else 0
        else:
            sx, sy = 1, 0
        if sx and sy:
            csp = r.f(2)
    if not mono:
        r.f(1)  # separate_uv_delta_q
    grain = r.f(1)
    return SequenceHeader(
        seq_profile, still, reduced, level0, tier0, max_w, max_h, wbits, hbits, frame_ids, id_len,
        sb128, order_hint, order_bits, force_sct, force_mv, superres, high, twelve, bit_depth, mono,
        desc, cp, tc, mc, crange, sx, sy, csp, grain, decoder_model_info, equal_interval,
        presentation_len, removal_len, tuple(model_ops))


def tile_log2(blk: int, target: int) -> int:
    k = 0
    while (blk << k) < target:
        k += 1
    return k


def _tile_info(r: BitReader, seq: SequenceHeader, mi_cols: int, mi_rows: int) -> None:
    """Read (and discard) tile_info(): it only has to be walked to reach the quantiser."""
    sb_shift = 5 if seq.use_128x128_superblock else 4
    sb_cols = (mi_cols + (1 << sb_shift) - 1) >> sb_shift
    sb_rows = (mi_rows + (1 << sb_shift) - 1) >> sb_shift
    sb_size = sb_shift + 2
    max_width_sb = MAX_TILE_WIDTH >> sb_size
    max_area_sb = MAX_TILE_AREA >> (2 * sb_size)
    min_cols_log2 = tile_log2(max_width_sb, sb_cols)
    max_cols_log2 = tile_log2(1, min(sb_cols, MAX_TILE_COLS))
    max_rows_log2 = tile_log2(1, min(sb_rows, MAX_TILE_ROWS))
    min_tiles_log2 = max(min_cols_log2, tile_log2(max_area_sb, sb_rows * sb_cols))
    if r.f(1):  # uniform_tile_spacing_flag
        cols_log2 = min_cols_log2
        while cols_log2 < max_cols_log2 and r.f(1):
            cols_log2 += 1
        rows_log2 = max(min_tiles_log2 - cols_log2, 0)
        while rows_log2 < max_rows_log2 and r.f(1):
            rows_log2 += 1
    else:
        widest, start, cols = 0, 0, 0
        while start < sb_cols:
            size = r.ns(min(sb_cols - start, max_width_sb)) + 1
            widest, start, cols = max(widest, size), start + size, cols + 1
        cols_log2 = tile_log2(1, cols)
        area = (sb_rows * sb_cols) >> (min_tiles_log2 + 1) if min_tiles_log2 > 0 else sb_rows * sb_cols
        max_height_sb = max(area // widest, 1)
        start, rows = 0, 0
        while start < sb_rows:
            start += r.ns(min(sb_rows - start, max_height_sb)) + 1
            rows += 1
        rows_log2 = tile_log2(1, rows)
    if cols_log2 or rows_log2:
        r.f(cols_log2 + rows_log2)  # context_update_tile_id
        r.f(2)  # tile_size_bytes_minus_1


@dataclass(frozen=True)
class FrameInfo:
    frame_type: int
    width: int
    height: int
    base_q_idx: int


def parse_frame_header(payload: bytes, seq: SequenceHeader, temporal_id: int = 0,
                       spatial_id: int = 0) -> FrameInfo:
    """uncompressed_header() of an intra frame, up to and including base_q_idx."""
    r = BitReader(payload)
    if seq.reduced_still_picture_header:
        frame_type, show_frame, error_resilient = KEY_FRAME, 1, 1
    else:
        if r.f(1):
            raise Av1Error("a still picture cannot show an existing frame")
        frame_type, show_frame = r.f(2), r.f(1)
        if show_frame and seq.decoder_model_info_present and not seq.equal_picture_interval:
            r.f(seq.frame_presentation_time_length)
        if not show_frame:
            r.f(1)  # showable_frame
        if frame_type == SWITCH_FRAME or (frame_type == KEY_FRAME and show_frame):
            error_resilient = 1
        else:
            error_resilient = r.f(1)
    if frame_type not in (KEY_FRAME, INTRA_ONLY_FRAME):
        raise Av1Error("the AV1 frame is not an intra frame")
    disable_cdf_update = r.f(1)
    sct = r.f(1) if seq.seq_force_screen_content_tools == SELECT_SCREEN_CONTENT_TOOLS \
        else seq.seq_force_screen_content_tools
    if sct and seq.seq_force_integer_mv == SELECT_INTEGER_MV:
        r.f(1)  # force_integer_mv
    if seq.frame_id_numbers_present:
        r.f(seq.frame_id_length)
    if frame_type == SWITCH_FRAME:
        override = 1
    elif seq.reduced_still_picture_header:
        override = 0
    else:
        override = r.f(1)
    r.f(seq.order_hint_bits)
    # intra or error resilient: primary_ref_frame is PRIMARY_REF_NONE, nothing to read
    if seq.decoder_model_info_present and r.f(1):  # buffer_removal_time_present_flag
        for idc in seq.decoder_model_ops:
            in_t, in_s = (idc >> temporal_id) & 1, (idc >> (spatial_id + 8)) & 1
            if idc == 0 or (in_t and in_s):
                r.f(seq.buffer_removal_time_length)
    if not (frame_type == KEY_FRAME and show_frame):
        refresh = r.f(8)
        if refresh != 0xFF and error_resilient and seq.enable_order_hint:
            for _ in range(8):
                r.f(seq.order_hint_bits)
    if override:
        width, height = r.f(seq.frame_width_bits) + 1, r.f(seq.frame_height_bits) + 1
    else:
        width, height = seq.max_frame_width, seq.max_frame_height
    if seq.enable_superres and r.f(1):
        raise Av1Error("superres frames are not supported")
    if r.f(1):  # render_and_frame_size_different
        r.f(16), r.f(16)
    if sct:
        r.f(1)  # allow_intrabc (UpscaledWidth == FrameWidth without superres)
    if not (seq.reduced_still_picture_header or disable_cdf_update):
        r.f(1)  # disable_frame_end_update_cdf
    mi_cols, mi_rows = 2 * ((width + 7) >> 3), 2 * ((height + 7) >> 3)
    _tile_info(r, seq, mi_cols, mi_rows)
    return FrameInfo(frame_type, width, height, r.f(8))
