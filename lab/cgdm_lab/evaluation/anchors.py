"""The classical anchors: Pillow's JPEG, WebP and AVIF (and JPEG XL where its plugin is
installed), each driven by one quality setting.

``cgdm eval`` runs each over a fixed quality sweep wide enough to bracket cgdm's bpp range
(about 0.07 to 2 bpp on half-size sunhays80 photos); ``benchmarks/rd_base.py`` instead
bisects the setting to match cgdm's bpp per image (``match_bpp``).

AVIF comes twice by default: ``avif`` at speed 6 (the everyday setting, libavif's default;
cgdm's AV1 base encodes at speed 3 at its default effort, 4 above 4.2 MP) and
``avif-s2``, speed 2, about the strongest AVIF
that is practical (10-20x slower to encode, a shorter sweep). ``avif_anchor(speed)`` makes
one at any other speed, e.g. the one cgdm's AV1 base uses at another effort, and
``default_anchors(avif_speed=...)`` puts it in the set ``cgdm eval`` runs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable, Iterable

from PIL import Image


@dataclass(frozen=True)
class ClassicalCodec:
    """A Pillow format driven by one integer quality parameter (higher = more bytes)."""

    name: str
    pil_format: str
    extension: str
    q_min: int
    q_max: int
    options: tuple[tuple[str, object], ...] = ()
    sweep: tuple[int, ...] = ()

    def encode(self, img: Image.Image, q: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, self.pil_format, quality=q, **dict(self.options))
        return buf.getvalue()

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options)
        return f"{self.name} (Pillow {self.pil_format}; {opts})"


JPEG = ClassicalCodec("jpeg", "JPEG", "jpg", 1, 100, (("optimize", True), ("subsampling", "4:2:0")),
                      (2, 5, 8, 12, 18, 25, 35, 50, 65, 80))
WEBP = ClassicalCodec("webp", "WEBP", "webp", 0, 100, (("method", 6),),
                      (0, 5, 10, 20, 35, 50, 65, 80))

AVIF_DEFAULT_SPEED = 6
AVIF_SWEEP = (0, 10, 20, 30, 40, 50, 60, 70)
# speeds below this encode an order of magnitude slower: a shorter sweep over the same span
AVIF_SLOW_SPEED = 4
AVIF_SLOW_SWEEP = (0, 20, 40, 55, 70)


def avif_anchor(speed: int = AVIF_DEFAULT_SPEED, name: str | None = None,
                sweep: tuple[int, ...] | None = None) -> ClassicalCodec:
    """Pillow AVIF (4:2:0) at libavif ``speed`` (0 slowest .. 10 fastest).

    The name defaults to ``avif`` at speed 6 (the name earlier results use) and to
    ``avif-s<speed>`` otherwise, so that rows at different speeds never share a name (a
    resumed run keys its rows by codec name). Speeds under 4 get the shorter sweep."""
    if not 0 <= speed <= 10:
        raise ValueError(f"AVIF speed must be 0..10, not {speed}")
    if name is None:
        name = "avif" if speed == AVIF_DEFAULT_SPEED else f"avif-s{speed}"
    if sweep is None:
        sweep = AVIF_SLOW_SWEEP if speed < AVIF_SLOW_SPEED else AVIF_SWEEP
    return ClassicalCodec(name, "AVIF", "avif", 0, 100, (("speed", speed), ("subsampling", "4:2:0")),
                          tuple(sweep))


AVIF = avif_anchor(AVIF_DEFAULT_SPEED, "avif")
AVIF_STRONG_SPEED = 2  # about the slowest AVIF encode that is practical
AVIF_S2 = avif_anchor(AVIF_STRONG_SPEED, "avif-s2")
# libjxl through pillow-jxl-plugin: quality 0..99 (100 is refused; 0 is libjxl's largest
# distance, about 0.15-0.3 bpp on half-size photos, so the curve starts higher than AVIF's).
# lossless_jpeg=False: never transcode a JPEG source losslessly (it would not be a lossy point).
JXL = ClassicalCodec("jxl", "JXL", "jxl", 0, 99, (("effort", 7), ("lossless_jpeg", False)),
                     (0, 10, 20, 35, 50, 65, 80, 90))


def default_anchors(avif_speed: int = AVIF_DEFAULT_SPEED) -> tuple[ClassicalCodec, ...]:
    """The anchors ``cgdm eval`` runs: JPEG, WebP, AVIF at ``avif_speed``, AVIF at speed 2
    and JPEG XL (``available_anchors`` drops those this Pillow cannot write)."""
    out = [JPEG, WEBP, avif_anchor(avif_speed)]
    if avif_speed != AVIF_STRONG_SPEED:
        out.append(AVIF_S2)
    return (*out, JXL)


ALL = default_anchors()


def avif_support() -> str | None:
    """Where AVIF encoding comes from ("pillow" or "pillow-avif-plugin"), or None if absent."""
    Image.init()
    if "AVIF" in Image.SAVE:
        return "pillow"
    try:
        import pillow_avif  # noqa: F401  (registers the plugin)
    except ImportError:
        return None
    return "pillow-avif-plugin" if "AVIF" in Image.SAVE else None


def jxl_support() -> str | None:
    """Where JPEG XL encoding comes from ("pillow" or "pillow-jxl-plugin"), or None if absent.
    Importing the plugin registers it with Pillow, for writing and for reading back."""
    Image.init()
    if "JXL" in Image.SAVE:
        try:  # registered already: say by whom
            import pillow_jxl  # noqa: F401
        except ImportError:
            return "pillow"
        return "pillow-jxl-plugin"
    try:
        import pillow_jxl  # noqa: F401  (registers the plugin)
    except ImportError:
        return None
    return "pillow-jxl-plugin" if "JXL" in Image.SAVE else None


AVIF_NOTE = "no encoder (needs Pillow >= 11.2 built with libavif, or pillow-avif-plugin)"
JXL_NOTE = ("no encoder (pip install pillow-jxl-plugin, or the project's 'jxl' extra: "
            "pip install -e '.[jxl]')")


def available_anchors(anchors: Iterable[str | ClassicalCodec]) -> tuple[list[ClassicalCodec], list[str]]:
    """The requested anchors (names from ``ALL``, or codecs) this Pillow can write, and a
    note for each format it cannot (one note per format, naming the anchors skipped)."""
    Image.init()
    known = {c.name: c for c in ALL}
    codecs: list[ClassicalCodec] = []
    missing: dict[str, list[str]] = {}
    for a in anchors:
        codec = a if isinstance(a, ClassicalCodec) else known[a]
        if any(c.name == codec.name for c in codecs):
            continue
        fmt = codec.pil_format
        if fmt == "AVIF" and avif_support() is None or fmt == "JXL" and jxl_support() is None \
                or fmt not in ("AVIF", "JXL") and fmt not in Image.SAVE:
            missing.setdefault(fmt, []).append(codec.name)
        else:
            codecs.append(codec)
    notes = []
    for fmt, names in missing.items():
        label = {"AVIF": "AVIF", "JXL": "JPEG XL", "WEBP": "WebP"}.get(fmt, fmt)
        why = {"AVIF": AVIF_NOTE, "JXL": JXL_NOTE}.get(fmt, f"Pillow was built without {label}")
        notes.append(f"{label}: {why}; {', '.join(names)} skipped")
    return codecs, notes


def bpp_of(n_bytes: int, width: int, height: int) -> float:
    """Bits per pixel of a complete file of ``n_bytes``."""
    return 8.0 * n_bytes / (width * height)


def match_bpp(encode_at: Callable[[int], bytes], q_min: int, q_max: int, target: float,
              pixels: int) -> tuple[int, bytes]:
    """The quality setting (and its bytes) whose bpp is closest to ``target``.

    Bisection for the smallest setting reaching the target, assuming size grows with the
    setting, then the better of it and its lower neighbour. ``encode_at`` should cache.
    """
    def bpp(q: int) -> float:
        return 8.0 * len(encode_at(q)) / pixels

    lo, hi = q_min, q_max
    if bpp(hi) <= target:
        return hi, encode_at(hi)
    if bpp(lo) >= target:
        return lo, encode_at(lo)
    while hi - lo > 1:  # invariant: bpp(lo) < target <= bpp(hi)
        mid = (lo + hi) // 2
        if bpp(mid) < target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda q: (abs(bpp(q) - target), q))
    return best, encode_at(best)


def cached(fn: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """Memoise an encoder over its quality setting (bisections for several levels share it)."""
    store: dict[int, bytes] = {}

    def wrapper(q: int) -> bytes:
        if q not in store:
            store[q] = fn(q)
        return store[q]

    return wrapper
