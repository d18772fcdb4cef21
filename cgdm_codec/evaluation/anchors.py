"""The classical anchors: Pillow's JPEG, WebP and AVIF, each driven by one quality setting.

``cgdm eval`` runs each over a fixed quality sweep wide enough to bracket cgdm's bpp range
(about 0.07 to 2 bpp on half-size sunhays80 photos); ``benchmarks/rd_base.py`` instead
bisects the setting to match cgdm's bpp per image (``match_bpp``).
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
AVIF = ClassicalCodec("avif", "AVIF", "avif", 0, 100, (("speed", 6), ("subsampling", "4:2:0")),
                      (0, 10, 20, 30, 40, 50, 60, 70))
ALL = (JPEG, WEBP, AVIF)


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


def available_anchors(names: Iterable[str]) -> tuple[list[ClassicalCodec], list[str]]:
    """The requested anchors this Pillow can write, and a note for each one it cannot."""
    Image.init()
    known = {c.name: c for c in ALL}
    codecs, notes = [], []
    for name in names:
        if name == "avif" and avif_support() is None:
            notes.append("AVIF: no encoder (needs Pillow >= 11.2 built with libavif, or "
                         "pillow-avif-plugin); AVIF skipped")
        elif name == "webp" and "WEBP" not in Image.SAVE:
            notes.append("WebP: Pillow was built without WebP; WebP skipped")
        else:
            codecs.append(known[name])
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
