"""Encoding to a byte budget (``--size``, ``--bpp``): the best quality whose file fits.

The encoder knows the exact size of every candidate, so the search is over real files:
a bisection over the base codec's qualities (AV1: Pillow's AVIF quality 0..100; the learned
base: levels 1..6), each candidate coded without the diffusion stage, which is cheap. On a
fine scale coded slower than ``PROBE_EFFORT`` (AV1 at the default effort: speed 3) the
bisection runs at the probe's speed, whose files are somewhat larger at a quality, and a search
at the real speed from its answer settles the quality (``largest_fitting_near``). The
final file is then coded as asked; the diffusion stage adds a few bytes (syntax, steps),
so when that pushes it over the budget the next lower quality is taken. File sizes grow
with quality almost always, not strictly: of every candidate coded, the largest that
fits is kept, so the answer is never over the budget and never worse than the bisection's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .imageio import CodecImage
    from .options import EncodeSettings


@dataclass(frozen=True)
class Setting:
    """One point of a base codec's rate scale, as ``encode_image`` takes it."""

    level: int  # the container's quality level 1..6
    fine: int | None  # the backend's fine quality (AV1), else None

    def describe(self, base: str) -> str:
        return f"quality {self.level}" if self.fine is None else f"{base} quality {self.fine} (level {self.level})"


@dataclass(frozen=True)
class Fitted:
    data: bytes
    setting: Setting
    budget: int
    base: str

    @property
    def miss(self) -> float:
        """How far under the budget the file landed, as a fraction of the budget."""
        return (self.budget - len(self.data)) / self.budget


#: The effort whose encodes guess the quality before the real speed settles it.
PROBE_EFFORT = "fast"


class TargetError(ValueError):
    """No setting gives a file within the budget."""


def settings_for(fine_range: tuple[int, int] | None,
                 level_of: Callable[[int], int] | None) -> list[Setting]:
    """The candidate settings, from the smallest file to the largest."""
    if fine_range is None or level_of is None:
        return [Setting(level, None) for level in range(1, 7)]
    lo, hi = fine_range
    return [Setting(level_of(q), q) for q in range(lo, hi + 1)]


class _Sizes:
    """Sizes measured once each, against one budget; the answer is the largest that fits of
    *every* size measured, so a non-monotone step cannot push it over the budget."""

    def __init__(self, size_at: Callable[[int], int], budget: int) -> None:
        self.size_at, self.budget, self.sizes = size_at, budget, {}

    def fits(self, i: int) -> bool:
        if i not in self.sizes:
            self.sizes[i] = self.size_at(i)
        return self.sizes[i] <= self.budget

    def bisect(self, lo: int, hi: int) -> None:
        """Narrow [lo, hi] down, given that lo fits."""
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.fits(mid):
                lo = mid
            else:
                hi = mid - 1

    def best(self) -> int:
        fitting = [i for i, s in self.sizes.items() if s <= self.budget]
        return max(fitting, key=lambda i: (self.sizes[i], i))


def largest_fitting(n: int, size_at: Callable[[int], int], budget: int) -> int | None:
    """The index whose size is the largest not over ``budget``, by bisection over 0..n-1.

    ``size_at`` is called O(log n) times and should grow with the index; every index it is
    called on is considered, so a non-monotone step cannot make the answer exceed the budget.
    """
    sizes = _Sizes(size_at, budget)
    if not sizes.fits(0):
        return None
    sizes.bisect(0, n - 1)
    return sizes.best()


def largest_fitting_near(guess: int, n: int, size_at: Callable[[int], int], budget: int) -> int | None:
    """``largest_fitting`` started from a ``guess``: steps of 1, 2, 4, ... away from it until
    the answer is bracketed, then bisection inside the bracket. Two calls when the guess is
    right, O(log distance) when it is not; as there, every size measured counts."""
    sizes = _Sizes(size_at, budget)
    i = min(max(guess, 0), n - 1)
    step = 1
    if sizes.fits(i):  # up from a fit to the first that does not fit
        lo, hi = i, n - 1
        while lo < hi:
            j = min(hi, lo + step)
            if not sizes.fits(j):
                hi = j - 1
                break
            lo, step = j, step * 2
    else:  # down to the first that fits
        while True:
            if i == 0:
                return None
            j = max(0, i - step)
            if sizes.fits(j):
                lo, hi = j, i - 1
                break
            i, step = j, step * 2
    sizes.bisect(lo, hi)
    return sizes.best()


def encode_to_size(img: "CodecImage", budget: int, settings: "EncodeSettings", *,
                   progress: Callable[[str], None] | None = None,
                   step_progress: Callable[[str, int, int], None] | None = None) -> Fitted:
    """The file of ``img`` coded at the best setting whose size is at most ``budget`` bytes
    (the rate of ``settings`` -- its quality, size or bpp -- is the search's to choose)."""
    from dataclasses import replace

    from .generations import default_base, load_bundle
    from .pipeline import encode_image

    name = settings.base or default_base()
    report = progress or (lambda _: None)
    bundle = load_bundle(name, diffusion=False)
    codec = bundle.base
    candidates = settings_for(codec.record.fine_range, codec.fine_level)
    coded: dict[int, bytes] = {}

    def at(s: Setting, **stage: Any) -> "EncodeSettings":
        """``settings`` coding the candidate ``s`` (the rate the candidate's alone)."""
        level = s.level if s.fine is None else None
        return replace(settings, base=name, size=None, bpp=None, quality=level, av1_quality=s.fine, **stage)

    def base_only(i: int, effort: str) -> bytes:
        plain = at(candidates[i], base_only=True, diffusion=False, texture_map=False, effort=effort)
        return encode_image(img, plain)

    def size_at(i: int) -> int:
        coded[i] = base_only(i, settings.effort)
        report(f"target {budget} bytes: {candidates[i].describe(name)} gives {len(coded[i])} bytes")
        return len(coded[i])

    if codec.record.fine_range is not None and settings.effort != PROBE_EFFORT:
        guess = largest_fitting(len(candidates), lambda i: len(base_only(i, PROBE_EFFORT)), budget)
        report(f"target {budget} bytes: {candidates[guess or 0].describe(name)} at the probe's speed")
        best = largest_fitting_near(guess or 0, len(candidates), size_at, budget)
    else:
        best = largest_fitting(len(candidates), size_at, budget)
    if best is None:
        raise TargetError(f"cannot reach {budget} bytes: the smallest file is {len(coded[0])} bytes "
                          f"({candidates[0].describe(name)})")
    diffusion = settings.diffusion_stage
    if diffusion is False or (diffusion is None and bundle.newest is None):  # already final
        return Fitted(coded[best], candidates[best], budget, name)
    for i in range(best, -1, -1):  # the diffusion stage adds a few bytes: step down if needed
        s = candidates[i]
        data = encode_image(img, at(s), progress=report, step_progress=step_progress)
        if len(data) <= budget:
            return Fitted(data, s, budget, name)
        report(f"{s.describe(name)} with the diffusion stage is {len(data)} bytes: one step down")
    raise TargetError(f"cannot reach {budget} bytes with the diffusion stage")
