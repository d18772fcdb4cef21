"""The ``.cgdm`` container: byte layout, serialisation and strict parsing.

This module is deliberately pure standard library (``enum``, ``zlib``, ...): it
must stay importable without torch, numpy or compressai so that ``cgdm info``
and format checks are fast and dependency free.  The normative description of
the format is ``docs/format.md``; keep the two in sync.

Summary of format version 1 (all fixed-size integers little-endian)::

    magic "CGD" | version u8 | packed u8 | base codec u8 | weights id 4 bytes
    | width varint | height varint | seed varint | [steps u8 if diffusion]
    | [syntax] [alpha] [metadata] [extensions] z y: each section but the last as (varint
      length, bytes), the last one running up to the checksum | CRC-32 u32 of all preceding bytes

The optional metadata section (ICC profile, EXIF, XMP; packed bit 6) holds records
``kind u8 | varint size | varint zlib length | zlib data`` in kind order. The optional
extensions section (packed bit 7) holds records ``kind u8 | varint length | bytes`` in kind
order: side information a decoder may use (kind 1: the texture map, ``docs/format.md`` 3.7).
"""

from __future__ import annotations

import enum
import operator
import os
import stat
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, FormatError

__all__ = [
    "BASE_CODEC_STREAMS",
    "BASE_CODEC_STREAM_NAMES",
    "CgdmFile",
    "ColourMode",
    "FORMAT_VERSION",
    "ConfigError",
    "FormatError",
    "Limits",
    "MAGIC",
    "MAX_DIM",
    "MAX_FILE_BYTES",
    "MAX_METADATA_RECORD_BYTES",
    "MAX_PIXELS",
    "METADATA_KINDS",
    "MIN_FILE_BYTES",
    "Metadata",
    "decode_extensions",
    "decode_metadata",
    "decode_varint",
    "encode_extensions",
    "encode_metadata",
    "encode_varint",
    "EXTENSION_KINDS",
    "TEXTURE_MAP",
    "framing_overhead",
    "parse",
    "read_file",
    "serialize",
    "summary",
]

MAGIC = b"CGD"
FORMAT_VERSION = 1

MAX_DIM = 32768
MAX_PIXELS = 1 << 26
MAX_U32 = (1 << 32) - 1
MAX_VARINT_BYTES = 5
MAX_STEPS = 255
MIN_QUALITY, MAX_QUALITY = 1, 6

#: Largest file :func:`read_file` accepts.
MAX_FILE_BYTES = 1 << 30
#: With a lowered pixel limit, files are also capped at this many bytes per allowed pixel
#: (plus :data:`FILE_BYTES_SLACK`): far above what the codec writes (< 2 bytes per pixel
#: at the best quality), yet it keeps the read proportional to the configured limit.
FILE_BYTES_PER_PIXEL = 16
FILE_BYTES_SLACK = 1 << 20

#: Environment variables that lower the image size limits (see :class:`Limits`).
ENV_MAX_SIDE = "CGDM_MAX_SIDE"
ENV_MAX_PIXELS = "CGDM_MAX_PIXELS"



class _BaseStreamTable(Mapping):
    """Base codec id -> a property of its stream names, read from ``base.registry`` at each use.

    The container knows base codecs by id and stream names only. It asks the registry's
    records (standard library data) when a file is checked, not at import, so importing the
    container loads no backend module and a backend registered later (a test's) is seen.
    """

    def __init__(self, of_names: Callable[[tuple[str, ...]], Any]) -> None:
        self._of_names = of_names

    @staticmethod
    def _ids() -> list[int]:
        from .base.registry import BY_ID

        return sorted(BY_ID)

    def __getitem__(self, codec_id: int) -> Any:
        from .base.registry import stream_names

        names = stream_names(codec_id) if isinstance(codec_id, int) else None
        if names is None:
            raise KeyError(codec_id)
        return self._of_names(names)

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())


#: Number of base-codec streams per base codec id, from the registry of base codecs:
#: codec 1 is the learned hyperprior (``z`` then ``y``), codec 2 AV1 intra (``av1``).
BASE_CODEC_STREAMS: Mapping[int, int] = _BaseStreamTable(len)
#: Human-readable stream names (used by :func:`summary`).
BASE_CODEC_STREAM_NAMES: Mapping[int, tuple[str, ...]] = _BaseStreamTable(tuple)

_FIXED_HEADER_BYTES = 10  # magic(3) + version + packed + base codec + weights id(4)
_CRC_BYTES = 4
#: Smallest byte string that can get past the first length check: the fixed
#: header, three one-byte varints (width, height, seed) and the checksum.
MIN_FILE_BYTES = _FIXED_HEADER_BYTES + 3 + _CRC_BYTES

# packed byte layout
_QUALITY_MASK = 0b0000_0111
_MODE_SHIFT = 3
_MODE_MASK = 0b0001_1000
_DIFFUSION_BIT = 0b0010_0000
_METADATA_BIT = 0b0100_0000
_EXTENSIONS_BIT = 0b1000_0000

#: Extension record kinds this reader knows (3.7). Kinds 1..127 change the picture a
#: decoder makes, so an unknown one is refused; kinds 128..255 are optional (a reader that
#: does not know one keeps it, so the file rewrites byte for byte, and decodes without it).
TEXTURE_MAP = 1
EXTENSION_KINDS: dict[int, str] = {TEXTURE_MAP: "texture map"}
#: Extension kinds that need the diffusion stage (the texture map steers its realism decode).
_DIFFUSION_EXTENSIONS = frozenset({TEXTURE_MAP})

#: Metadata record kinds (the record's first byte), in the order records must appear.
METADATA_KINDS: dict[int, str] = {1: "icc", 2: "exif", 3: "xmp"}
#: Largest (uncompressed) metadata record; also the inflate cap, so a small hostile
#: section cannot balloon memory.
MAX_METADATA_RECORD_BYTES = 16 << 20
#: The two byte orders a TIFF-structured EXIF block can start with.
_EXIF_MAGICS = (b"II*\x00", b"MM\x00*")


@dataclass(frozen=True)
class Limits:
    """How large an image this process agrees to handle, checked before any allocation.

    The defaults are the format's own limits; a user (or a service decoding files from
    strangers) can only lower them, via ``CGDM_MAX_SIDE`` / ``CGDM_MAX_PIXELS`` or the
    CLI's ``--max-side`` / ``--max-pixels``. Decoder memory grows linearly with the pixel
    count, so ``max_pixels`` is the knob that bounds it.
    """

    max_side: int = MAX_DIM
    max_pixels: int = MAX_PIXELS

    def __post_init__(self) -> None:
        for name, value, top in (("max side", self.max_side, MAX_DIM),
                                 ("max pixels", self.max_pixels, MAX_PIXELS)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ConfigError(f"{name} must be an integer in 1..{top} (the format's limit), got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Limits":
        """Limits from CGDM_MAX_SIDE / CGDM_MAX_PIXELS (unset or empty: the format's limits)."""
        env = os.environ if environ is None else environ
        values = {}
        for field_name, var in (("max_side", ENV_MAX_SIDE), ("max_pixels", ENV_MAX_PIXELS)):
            text = env.get(var, "").strip()
            if text:
                try:
                    values[field_name] = int(text.replace("_", ""))
                except ValueError:
                    raise ConfigError(f"{var}={text!r} is not an integer") from None
        try:
            return cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{ENV_MAX_SIDE}/{ENV_MAX_PIXELS}: {e}") from None

    def check(self, width: int, height: int, what: str = "image") -> None:
        """Raise :class:`FormatError` if a width x height image exceeds these limits."""
        if width > self.max_side or height > self.max_side or width * height > self.max_pixels:
            raise FormatError(
                f"{what} is {width}x{height} = {width * height} pixels; the limit is "
                f"{self.max_side} px per side and {self.max_pixels} pixels "
                f"(--max-side/--max-pixels, {ENV_MAX_SIDE}/{ENV_MAX_PIXELS})")

    @property
    def max_file_bytes(self) -> int:
        """The largest .cgdm file worth reading under these limits."""
        return min(MAX_FILE_BYTES, FILE_BYTES_SLACK + FILE_BYTES_PER_PIXEL * self.max_pixels)


class ColourMode(enum.IntEnum):
    """Colour mode of the decoded image (bits 3-4 of the packed byte)."""

    RGB = 0
    L = 1
    RGBA = 2
    LA = 3

    @property
    def has_alpha(self) -> bool:
        return self in (ColourMode.RGBA, ColourMode.LA)

    @property
    def channels(self) -> int:
        return (3, 1, 4, 2)[self]


# --------------------------------------------------------------------------
# varint (unsigned LEB128, canonical, at most 5 bytes, value < 2**32)
# --------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Encode ``0 <= value < 2**32`` as a canonical unsigned LEB128 varint."""
    if isinstance(value, bool):
        raise FormatError("varint value must be an integer, not bool")
    value = operator.index(value)
    if not 0 <= value <= MAX_U32:
        raise FormatError(f"varint value {value} outside 0..{MAX_U32}")
    out = bytearray()
    while True:
        group = value & 0x7F
        value >>= 7
        if value:
            out.append(group | 0x80)
        else:
            out.append(group)
            return bytes(out)


def decode_varint(data: bytes, pos: int = 0, what: str = "varint") -> tuple[int, int]:
    """Decode a varint at ``data[pos:]``; return ``(value, new_pos)``.

    Raises :class:`FormatError` if it runs past the end of ``data`` (message
    contains "truncated"), is longer than 5 bytes, is not canonical (a final
    byte of 0x00 after other bytes), or does not fit in 32 bits.
    """
    value = 0
    shift = 0
    start = pos
    n = len(data)
    for i in range(MAX_VARINT_BYTES):
        if pos >= n:
            raise FormatError(f"truncated file: {what} at byte {start} runs past the end")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise FormatError(f"invalid {what} at byte {start}: non-canonical varint encoding")
            if value > MAX_U32:
                raise FormatError(f"invalid {what} at byte {start}: value does not fit in 32 bits")
            return value, pos
    raise FormatError(f"invalid {what} at byte {start}: varint longer than {MAX_VARINT_BYTES} bytes")


# --------------------------------------------------------------------------
# metadata (ICC profile, EXIF, XMP)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Metadata:
    """Colour profile and descriptive metadata carried beside the pixels.

    The codec never interprets them: the ICC profile is kept so viewers show wide-gamut
    images in the right colours, EXIF and XMP so camera data and captions survive.
    ``exif`` is in the container's canonical form, the TIFF structure itself starting
    with ``II*\\0`` or ``MM\\0*`` (no ``Exif\\0\\0`` prefix as in JPEG's APP1).
    Empty values are normalised to None; each value is at most
    :data:`MAX_METADATA_RECORD_BYTES` bytes.
    """

    icc: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    # The section bytes this object was parsed from (or last serialised to): re-used by
    # serialize, so that serialize(parse(x)) == x even for another writer's deflate.
    _section: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in METADATA_KINDS.values():
            value = getattr(self, name)
            if value is None:
                continue
            value = _as_bytes(f"metadata {name}", value) or None
            if value is not None and len(value) > MAX_METADATA_RECORD_BYTES:
                raise FormatError(f"metadata {name} is too large ({len(value)} bytes, "
                                  f"limit {MAX_METADATA_RECORD_BYTES})")
            object.__setattr__(self, name, value)
        if self.exif is not None and self.exif[:4] not in _EXIF_MAGICS:
            raise FormatError("metadata exif must be a TIFF structure starting with II*\\0 or "
                              "MM\\0* (without the Exif\\0\\0 prefix)")

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}=<{len(v)} bytes>" for n, v in self.items())
        return f"Metadata({inner})"

    def items(self) -> list[tuple[str, bytes]]:
        """The present fields as (name, bytes), in record order (icc, exif, xmp)."""
        return [(n, v) for n in METADATA_KINDS.values() if (v := getattr(self, n)) is not None]

    def __bool__(self) -> bool:
        return bool(self.items())


def encode_metadata(md: Metadata) -> bytes:
    """The metadata section: one record per present field, in kind order."""
    if md._section is not None:
        return md._section
    out = bytearray()
    for kind, name in METADATA_KINDS.items():
        value = getattr(md, name)
        if value is None:
            continue
        packed = zlib.compress(value, 9)
        out.append(kind)
        out += encode_varint(len(value))
        out += encode_varint(len(packed))
        out += packed
    section = bytes(out)
    object.__setattr__(md, "_section", section)  # a cache: the fields are immutable
    return section


def _inflate_record(data: bytes, size: int, name: str) -> bytes:
    """Inflate one record, never producing more than its declared size + 1 bytes."""
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data, size + 1)
    except zlib.error:
        raise FormatError(f"metadata record {name} is corrupted (bad zlib data)") from None
    if len(raw) != size or d.unconsumed_tail or not d.eof or d.unused_data:
        raise FormatError(f"metadata record {name} does not inflate to exactly its declared "
                          f"{size} bytes")
    return raw


def decode_metadata(section: bytes) -> Metadata:
    """Strictly parse a metadata section (records in kind order, each once, nothing after).

    Raises :class:`FormatError` with one line for unknown kinds, duplicates, wrong order,
    empty or oversized records, truncation, bad zlib data, a size mismatch, an EXIF
    record that is not a TIFF structure, or an empty section.
    """
    if not section:
        raise FormatError("invalid metadata section: the metadata flag is set but it has no record")
    values: dict[str, bytes] = {}
    pos, previous, n = 0, 0, len(section)
    while pos < n:
        kind = section[pos]
        if kind not in METADATA_KINDS:
            raise FormatError(f"invalid metadata section: unknown record kind {kind} at byte {pos}")
        name = METADATA_KINDS[kind]
        if kind <= previous:
            raise FormatError(f"invalid metadata section: record {name} is repeated or out of "
                              "order (icc, exif, xmp, each at most once)")
        previous = kind
        try:
            size, pos = decode_varint(section, pos + 1, f"size of metadata record {name}")
            zlen, pos = decode_varint(section, pos, f"zlib length of metadata record {name}")
        except FormatError as e:
            raise FormatError(f"invalid metadata section: {e}") from None
        if not 1 <= size <= MAX_METADATA_RECORD_BYTES:
            raise FormatError(f"invalid metadata section: record {name} declares {size} bytes "
                              f"(must be 1..{MAX_METADATA_RECORD_BYTES})")
        if zlen > n - pos:
            raise FormatError(f"invalid metadata section: record {name} ({zlen} bytes) runs "
                              f"past the end of the section ({n - pos} bytes left)")
        values[name] = _inflate_record(section[pos : pos + zlen], size, name)
        pos += zlen
    md = Metadata(**values)
    object.__setattr__(md, "_section", bytes(section))
    return md


def encode_extensions(records: tuple[tuple[int, bytes], ...]) -> bytes:
    """The extensions section: ``kind u8 | varint length | bytes`` per record, in kind order."""
    out = bytearray()
    for kind, data in records:
        out.append(kind)
        out += encode_varint(len(data))
        out += data
    return bytes(out)


def decode_extensions(section: bytes) -> tuple[tuple[int, bytes], ...]:
    """Strictly parse an extensions section (3.7): at least one record, kinds strictly
    increasing, kinds 1..127 known to this reader, nothing after the last record."""
    if not section:
        raise FormatError("invalid extensions section: the extensions flag is set but it has no record")
    records: list[tuple[int, bytes]] = []
    pos, previous, n = 0, 0, len(section)
    while pos < n:
        kind = section[pos]
        if kind == 0 or (kind < 128 and kind not in EXTENSION_KINDS):
            raise FormatError(f"invalid extensions section: unknown record kind {kind} at byte {pos} "
                              "(written by a newer cgdm?)")
        if kind <= previous:
            raise FormatError(f"invalid extensions section: record kind {kind} is repeated or out of order")
        previous = kind
        try:
            length, pos = decode_varint(section, pos + 1, f"length of extension record {kind}")
        except FormatError as e:
            raise FormatError(f"invalid extensions section: {e}") from None
        if length > n - pos:
            raise FormatError(f"invalid extensions section: record kind {kind} ({length} bytes) runs "
                              f"past the end of the section ({n - pos} bytes left)")
        records.append((kind, section[pos : pos + length]))
        pos += length
    return tuple(records)


def _as_extensions(value: Any) -> tuple[tuple[int, bytes], ...]:
    """Normalise a mapping or sequence of (kind, bytes) to a tuple sorted by kind."""
    items = value.items() if isinstance(value, Mapping) else value
    try:
        records = sorted((_as_int("extension kind", k), _as_bytes(f"extension {k}", v)) for k, v in items)
    except (TypeError, ValueError) as e:
        if isinstance(e, FormatError):
            raise
        raise FormatError("extensions must be (kind, bytes) pairs") from None
    return tuple(records)


# --------------------------------------------------------------------------
# the file object
# --------------------------------------------------------------------------


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise FormatError(f"{name} must be an integer, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise FormatError(f"{name} must be an integer, got {type(value).__name__}") from None


def _as_bytes(name: str, value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise FormatError(f"{name} must be bytes, got {type(value).__name__}")


def _check_dims(width: int, height: int) -> None:
    if not 1 <= width <= MAX_DIM:
        raise FormatError(f"invalid width {width} (must be 1..{MAX_DIM})")
    if not 1 <= height <= MAX_DIM:
        raise FormatError(f"invalid height {height} (must be 1..{MAX_DIM})")
    if width * height > MAX_PIXELS:
        raise FormatError(
            f"image too large: {width}x{height} = {width * height} pixels (limit {MAX_PIXELS})"
        )


def _check_quality(quality: int) -> None:
    if not MIN_QUALITY <= quality <= MAX_QUALITY:
        raise FormatError(f"invalid quality {quality} (must be {MIN_QUALITY}..{MAX_QUALITY})")


def _check_base_codec(base_codec: int) -> None:
    if base_codec not in BASE_CODEC_STREAMS:
        known = ", ".join(str(k) for k in sorted(BASE_CODEC_STREAMS))
        raise FormatError(f"unknown base codec id {base_codec} (this cgdm knows: {known})")


def _is_lossless(base_codec: int) -> bool:
    """Whether the registry's record of this codec says its files are exact (docs/format.md 3.2)."""
    from .base.registry import is_lossless

    return is_lossless(base_codec)


def _check_version(version: int) -> None:
    if version != FORMAT_VERSION:
        raise FormatError(
            f"unsupported format version {version} (this cgdm reads version {FORMAT_VERSION})"
        )


@dataclass(frozen=True)
class CgdmFile:
    """Everything a ``.cgdm`` file stores.

    Construction validates (and normalises: ints via ``__index__``, bytes-like
    objects to ``bytes``, sequences of streams to a tuple, ints to
    :class:`ColourMode`) every field and raises :class:`FormatError` when the
    object could not be written as a valid version-1 file.
    """

    quality: int
    width: int
    height: int
    weights_id: bytes
    base_streams: tuple[bytes, ...]
    colour_mode: ColourMode = ColourMode.RGB
    base_codec: int = 1
    seed: int = 0
    steps: int | None = None
    syntax: bytes | None = None
    alpha: bytes | None = None
    version: int = FORMAT_VERSION
    metadata: Metadata | None = None
    #: Side-information records (kind, bytes), in kind order (3.7); empty: no section.
    extensions: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        put = object.__setattr__
        for name in ("quality", "width", "height", "base_codec", "seed", "version"):
            put(self, name, _as_int(name, getattr(self, name)))
        put(self, "weights_id", _as_bytes("weights_id", self.weights_id))
        if isinstance(self.base_streams, (bytes, bytearray, memoryview, str)) or not hasattr(
            self.base_streams, "__iter__"
        ):
            raise FormatError("base_streams must be a sequence of bytes objects")
        put(
            self,
            "base_streams",
            tuple(_as_bytes(f"base_streams[{i}]", s) for i, s in enumerate(self.base_streams)),
        )
        try:
            put(self, "colour_mode", ColourMode(_as_int("colour_mode", self.colour_mode)))
        except ValueError as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"invalid colour mode {self.colour_mode!r}") from None
        if self.steps is not None:
            put(self, "steps", _as_int("steps", self.steps))
        if self.syntax is not None:
            put(self, "syntax", _as_bytes("syntax", self.syntax))
        if self.alpha is not None:
            put(self, "alpha", _as_bytes("alpha", self.alpha))
        if self.metadata is not None:
            if not isinstance(self.metadata, Metadata):
                raise FormatError(f"metadata must be a Metadata object, got {type(self.metadata).__name__}")
            if not self.metadata:
                put(self, "metadata", None)  # nothing to carry: the file stays metadata-free
        put(self, "extensions", _as_extensions(self.extensions or ()))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`FormatError` unless this object is serialisable."""
        _check_version(self.version)
        _check_quality(self.quality)
        _check_base_codec(self.base_codec)
        _check_dims(self.width, self.height)
        if len(self.weights_id) != 4:
            raise FormatError(f"weights_id must be exactly 4 bytes, got {len(self.weights_id)}")
        if not 0 <= self.seed <= MAX_U32:
            raise FormatError(f"invalid seed {self.seed} (must be 0..{MAX_U32})")
        expected = BASE_CODEC_STREAMS[self.base_codec]
        if len(self.base_streams) != expected:
            raise FormatError(
                f"base codec {self.base_codec} needs {expected} base streams, "
                f"got {len(self.base_streams)}"
            )
        if (self.steps is None) != (self.syntax is None):
            raise FormatError("steps and syntax must both be set (diffusion) or both be None")
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            raise FormatError(f"invalid DDIM step count {self.steps} (must be 1..{MAX_STEPS})")
        if self.diffusion and _is_lossless(self.base_codec):
            raise FormatError(f"base codec {self.base_codec} is lossless: its files have no diffusion stage")
        if self.colour_mode.has_alpha and self.alpha is None:
            raise FormatError(f"colour mode {self.colour_mode.name} requires an alpha section")
        if not self.colour_mode.has_alpha and self.alpha is not None:
            raise FormatError(f"colour mode {self.colour_mode.name} must not have an alpha section")
        kinds = [k for k, _ in self.extensions]
        if len(set(kinds)) != len(kinds):
            raise FormatError("an extension record kind appears twice")
        for kind, data in self.extensions:
            if not 1 <= kind <= 255 or (kind < 128 and kind not in EXTENSION_KINDS):
                raise FormatError(f"unknown extension record kind {kind}")
            if kind in _DIFFUSION_EXTENSIONS and not self.diffusion:
                raise FormatError(f"the {EXTENSION_KINDS[kind]} needs the diffusion stage")
        for name, section in self.named_sections():
            if len(section) > MAX_U32:
                raise FormatError(f"section {name} is too long ({len(section)} bytes)")

    @property
    def diffusion(self) -> bool:
        return self.steps is not None

    def extension(self, kind: int) -> bytes | None:
        """The bytes of the extension record ``kind``, or None when the file has none."""
        return next((data for k, data in self.extensions if k == kind), None)

    def named_sections(self) -> list[tuple[str, bytes]]:
        """The sections in file order, with display names.

        The small optional sections come first and the base streams last, so the final
        section (the latent stream, by far the largest) needs no length prefix: it runs up
        to the checksum.
        """
        names = BASE_CODEC_STREAM_NAMES.get(self.base_codec) or tuple(
            f"base{i}" for i in range(len(self.base_streams))
        )
        out: list[tuple[str, bytes]] = []
        if self.syntax is not None:
            out.append(("syntax", self.syntax))
        if self.alpha is not None:
            out.append(("alpha", self.alpha))
        if self.metadata is not None:
            out.append(("metadata", encode_metadata(self.metadata)))
        if self.extensions:
            out.append(("extensions", encode_extensions(self.extensions)))
        out.extend(zip(names, self.base_streams))
        return out

    @property
    def sections(self) -> tuple[bytes, ...]:
        """The section payloads in file order."""
        return tuple(s for _, s in self.named_sections())

    @property
    def payload_bytes(self) -> int:
        """Sum of the section contents (excluding their length prefixes)."""
        return sum(len(s) for s in self.sections)


# --------------------------------------------------------------------------
# serialise / parse
# --------------------------------------------------------------------------


def _header(f: CgdmFile) -> bytes:
    packed = f.quality | (int(f.colour_mode) << _MODE_SHIFT)
    if f.diffusion:
        packed |= _DIFFUSION_BIT
    if f.metadata is not None:
        packed |= _METADATA_BIT
    if f.extensions:
        packed |= _EXTENSIONS_BIT
    out = bytearray(MAGIC)
    out += bytes((f.version, packed, f.base_codec))
    out += f.weights_id
    out += encode_varint(f.width)
    out += encode_varint(f.height)
    out += encode_varint(f.seed)
    if f.diffusion:
        out.append(f.steps)  # type: ignore[arg-type]
    return bytes(out)


def serialize(f: CgdmFile) -> bytes:
    """Encode ``f`` as a version-1 ``.cgdm`` byte string."""
    if not isinstance(f, CgdmFile):
        raise TypeError(f"expected CgdmFile, got {type(f).__name__}")
    f.validate()
    parts = [_header(f)]
    *prefixed, last = f.sections
    for section in prefixed:
        parts.append(encode_varint(len(section)))
        parts.append(section)
    parts.append(last)  # the final section runs up to the checksum: no length prefix
    body = b"".join(parts)
    return body + zlib.crc32(body).to_bytes(4, "little")


def parse(data: bytes, limits: Limits | None = None) -> CgdmFile:
    """Strictly decode a ``.cgdm`` byte string.

    Every problem raises :class:`FormatError` with a one-line message; the
    checks run in the order documented in ``docs/format.md``. ``limits`` (default:
    the format's own) are applied to the dimensions as soon as they are read.

    A header field that makes no sense (an unknown version or base codec, a reserved
    bit...) is what a newer cgdm could write, but far more often one damaged byte: when
    the file's checksum does not match either, the message says the file is damaged.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    try:
        return _parse(data, limits)
    except FormatError as e:
        if (data[: len(MAGIC)] == MAGIC and len(data) >= MIN_FILE_BYTES
                and "checksum mismatch" not in str(e) and not _checksum_matches(data)):
            raise FormatError(f"damaged file (checksum mismatch): {e}") from None
        raise


def _checksum_matches(data: bytes) -> bool:
    """Whether the last 4 bytes are the CRC-32 of the rest (the file is as it was written)."""
    return int.from_bytes(data[-_CRC_BYTES:], "little") == zlib.crc32(memoryview(data)[:-_CRC_BYTES])


def _parse(data: bytes, limits: Limits | None) -> CgdmFile:
    n = len(data)

    # 1. magic (only as much of it as is present), 2. minimum length
    if data[: len(MAGIC)] != MAGIC[: min(n, len(MAGIC))]:
        raise FormatError("not a .cgdm file (bad magic bytes)")
    if n < MIN_FILE_BYTES:
        raise FormatError(f"truncated file: {n} bytes, a .cgdm file has at least {MIN_FILE_BYTES}")

    # 3. fixed header
    version = data[3]
    _check_version(version)
    packed = data[4]
    quality = packed & _QUALITY_MASK
    _check_quality(quality)
    colour_mode = ColourMode((packed & _MODE_MASK) >> _MODE_SHIFT)
    diffusion = bool(packed & _DIFFUSION_BIT)
    has_metadata = bool(packed & _METADATA_BIT)
    has_extensions = bool(packed & _EXTENSIONS_BIT)
    base_codec = data[5]
    _check_base_codec(base_codec)
    weights_id = data[6:10]
    pos = _FIXED_HEADER_BYTES

    # 4. dimensions (validated before anything else uses them), seed, steps
    width, pos = decode_varint(data, pos, "width")
    if not 1 <= width <= MAX_DIM:
        raise FormatError(f"invalid width {width} (must be 1..{MAX_DIM})")
    height, pos = decode_varint(data, pos, "height")
    _check_dims(width, height)
    if limits is not None:
        limits.check(width, height, "the file's image")
    seed, pos = decode_varint(data, pos, "seed")
    steps: int | None = None
    if diffusion:
        if pos >= n:
            raise FormatError(f"truncated file: steps field at byte {pos} runs past the end")
        steps = data[pos]
        pos += 1
        if steps == 0:
            raise FormatError(f"invalid DDIM step count 0 (must be 1..{MAX_STEPS})")

    # 5. sections: every one but the last is length-prefixed; the last fills the
    #    bytes up to the checksum (appended bytes therefore fail the checksum)
    names = []
    if diffusion:
        names.append("syntax")
    if colour_mode.has_alpha:
        names.append("alpha")
    if has_metadata:
        names.append("metadata")
    if has_extensions:
        names.append("extensions")
    base_names = list(BASE_CODEC_STREAM_NAMES.get(base_codec, ()))
    base_names += [f"base{i}" for i in range(len(base_names), BASE_CODEC_STREAMS[base_codec])]
    names += base_names
    sections: list[bytes] = []
    for name in names[:-1]:
        length, pos = decode_varint(data, pos, f"length of section {name}")
        available = n - pos - _CRC_BYTES
        if length > available:
            raise FormatError(
                f"truncated file: section {name} ({length} bytes) at byte {pos} "
                f"runs past the end ({max(available, 0)} bytes left before the checksum)"
            )
        sections.append(data[pos : pos + length])
        pos += length
    if n - pos < _CRC_BYTES:
        raise FormatError(f"truncated file: checksum at byte {pos} runs past the end")
    sections.append(data[pos : n - _CRC_BYTES])
    pos = n - _CRC_BYTES

    # 6. checksum
    stored = int.from_bytes(data[pos:], "little")
    computed = zlib.crc32(memoryview(data)[:pos])
    if stored != computed:
        what = "truncated file" if _cut_short(base_codec, sections[-1]) else "corrupted file or trailing bytes"
        raise FormatError(f"{what} (checksum mismatch: stored 0x{stored:08x}, computed 0x{computed:08x})")

    # 7. metadata records (after the checksum: a damaged file is never inflated)
    k = int(diffusion) + int(colour_mode.has_alpha)
    metadata = decode_metadata(sections[k]) if has_metadata else None
    k += int(has_metadata)
    extensions = decode_extensions(sections[k]) if has_extensions else ()
    k += int(has_extensions)
    return CgdmFile(
        quality=quality,
        width=width,
        height=height,
        weights_id=weights_id,
        base_streams=tuple(sections[k:]),
        colour_mode=colour_mode,
        base_codec=base_codec,
        seed=seed,
        steps=steps,
        syntax=sections[0] if diffusion else None,
        alpha=sections[int(diffusion)] if colour_mode.has_alpha else None,
        version=version,
        metadata=metadata,
        extensions=extensions,
    )


def _cut_short(base_codec: int, last: bytes) -> bool:
    """Whether the last section ends before its picture does, so that a checksum mismatch
    can say "truncated" (the usual cause) rather than "corrupted": an AV1 payload's OBUs
    carry their sizes, and a whole frame OBU means bytes were changed or appended instead.
    Other streams do not say their length, and keep the general wording."""
    if BASE_CODEC_STREAM_NAMES.get(base_codec) != ("av1",):
        return False
    from .base.av1_bitstream import OBU_FRAME, Av1Error, read_leb128

    pos = 0
    try:
        while pos < len(last):
            header = last[pos]
            size, pos = read_leb128(last, pos + 1 + ((header >> 2) & 1))
            if (header >> 3) & 0xF == OBU_FRAME and pos + size <= len(last):
                return False
            pos += size
    except Av1Error:
        pass
    return True


def read_file(path: str | os.PathLike[str], limits: Limits | None = None) -> CgdmFile:
    """Read and parse a ``.cgdm`` file of at most :data:`MAX_FILE_BYTES` bytes.

    ``limits`` defaults to :meth:`Limits.from_env`; a lowered pixel limit also lowers
    the file-size cap (:attr:`Limits.max_file_bytes`). The size is checked with ``stat``
    before reading; the read itself is also bounded, so a file growing in between
    cannot exceed the limit either. ``OSError`` (missing file, permissions, ...)
    propagates unchanged.
    """
    limits = Limits.from_env() if limits is None else limits
    cap = min(MAX_FILE_BYTES, limits.max_file_bytes)
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{os.fspath(path)} is a directory")
        if stat.S_ISREG(st.st_mode) and st.st_size > cap:
            raise FormatError(
                f"file too large: {st.st_size} bytes (limit {cap} bytes)"
            )
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise FormatError(f"file too large: more than {cap} bytes")
    return parse(data, limits)


# --------------------------------------------------------------------------
# reporting helpers
# --------------------------------------------------------------------------


def framing_overhead(f: CgdmFile) -> int:
    """``len(serialize(f)) - f.payload_bytes``, computed without serialising."""
    f.validate()
    return (
        len(_header(f))
        + sum(len(encode_varint(len(s))) for s in f.sections[:-1])
        + _CRC_BYTES
    )


def summary(f: CgdmFile, file_bytes: int) -> dict[str, Any]:
    """JSON-ready description of ``f`` for ``cgdm info --json``.

    ``file_bytes`` is the size of the file on disk (normally
    ``len(serialize(f))``); ``bytes`` and ``bpp`` are computed from it.
    """
    file_bytes = _as_int("file_bytes", file_bytes)
    return {
        "width": f.width,
        "height": f.height,
        "quality": f.quality,
        "bytes": file_bytes,
        "bpp": round(8 * file_bytes / (f.width * f.height), 4),
        "format_version": f.version,
        "seed": f.seed,
        "colour_mode": f.colour_mode.name,
        "base_codec": f.base_codec,
        "weights_id": f.weights_id.hex(),
        "diffusion": f.diffusion,
        "steps": f.steps,
        "sections": {name: len(s) for name, s in f.named_sections()},
        "framing_bytes": framing_overhead(f),
        "metadata": {name: len(v) for name, v in f.metadata.items()} if f.metadata else {},
        "extensions": {EXTENSION_KINDS.get(k, f"kind {k}"): len(v) for k, v in f.extensions},
    }
