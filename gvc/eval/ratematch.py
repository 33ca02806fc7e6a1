"""Matching a tunable codec's real output rate to a target bpp by bisection over its quality value.

Rate falls as q (CRF / QP) rises. The search bisects over whole q values first; for codecs with finer steps
(x265 CRF 0.01, SVT-AV1 CRF 0.25) it then bisects between the two whole neighbours on the codec's own grid until
the rate is within ``tolerance`` (relative) or ``refine_steps`` are spent. Every encode is a real file; encodes
are cached per q, so the targets of one video share work, and the closest of all encodes is chosen. A target
that cannot be met within the tolerance comes back flagged with the reason (the encoder's floor or ceiling,
or the two neighbouring settings and their rates when the encoder has no setting in between).

gvc's variable-rate models are matched by this same bisection (:meth:`gvc.eval.codecs.GVCCodec.quality_codec`:
one model file as a tunable codec whose q is the quality level, ``q_step`` the packet's 1/256 grid). Their rate
*rises* with q (``rate_rises_with_q``), so the search runs on the mirrored value ``q_min + q_max - q``, along which
rate falls as for CRF; the reasons name the real q. One search for every codec in a report: the same tolerance,
the same whole-clip encodes, the same floor / ceiling reasons.

A codec run under its own rate control (``mode == "bitrate"``, e.g. VVenC with two passes) is matched instead by
asking it for a rate and correcting the request by the ratio target / reached (in the log domain, bisecting
between the closest requests above and below once they bracket the target), up to ``refine_steps + 2`` encodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gvc.eval.codecs.base import EncodedFile, TunableCodec


@dataclass
class MatchResult:
    """Outcome of one search: the chosen encode, its relative error, whether it is within tolerance, why not."""

    target_bpp: float
    chosen: EncodedFile
    rel_error: float
    within_tolerance: bool
    reason: str | None = None
    tried: list[tuple[float, float]] = field(default_factory=list)  # (q, bpp) of the encodes this search made

    def as_dict(self) -> dict[str, Any]:
        return {
            "target_bpp": self.target_bpp,
            "q": self.chosen.setting,
            "rel_error": self.rel_error,
            "within_tolerance": self.within_tolerance,
            "match_reason": self.reason,
            "tried": self.tried,
        }


class BitrateMatcher:
    """Bisection of ``codec``'s q for ``video`` (see module docstring); encodes go to ``work_dir``."""

    def __init__(
        self,
        codec: TunableCodec,
        video,
        work_dir: str | Path,
        tolerance: float = 0.05,
        refine_steps: int = 6,
    ):
        self.codec = codec
        self.video = video
        self.work_dir = Path(work_dir)
        self.tolerance = float(tolerance)
        self.refine_steps = int(refine_steps)
        self.cache: dict[float, EncodedFile] = {}
        #: rate rises with the codec's q (gvc's quality level): the search runs on the mirrored value
        self.rising = bool(getattr(codec, "rate_rises_with_q", False))

    def _q(self, u: float) -> float:
        """The codec's q at search position ``u``, along which rate falls: ``u`` itself, or its mirror
        ``q_min + q_max - u`` for a codec whose rate rises with q."""
        if not self.rising:
            return u
        lo, hi = self.codec.q_range
        return lo + hi - u

    def snap(self, q: float) -> float:
        step = self.codec.q_step
        lo, hi = self.codec.q_range
        return min(max(round(round(q / step) * step, 6), lo), hi)

    def encode(self, q: float) -> EncodedFile:
        q = self.snap(q)
        if q not in self.cache:
            ext = getattr(self.codec, "ext", "bin")
            out = self.work_dir / f"{self.codec.name}_q{self.codec.format_q(q)}.{ext}"
            self.cache[q] = self.codec.encode(self.video, q, out)
        return self.cache[q]

    def error(self, enc: EncodedFile, target: float) -> float:
        return (enc.bpp - target) / target

    def match(self, target_bpp: float) -> MatchResult:
        if getattr(self.codec, "mode", "q") == "bitrate":
            return self._match_requested(float(target_bpp))
        target = float(target_bpp)
        before = set(self.cache)
        q_min, q_max = self.codec.q_range
        lo, hi = math.ceil(q_min), math.floor(q_max)  # search positions: rate(lo) >= target > rate(hi)
        best_err = math.inf
        while hi - lo > 1:
            mid = (lo + hi) // 2
            enc = self.encode(self._q(mid))
            best_err = min(best_err, abs(self.error(enc, target)))
            if best_err <= self.tolerance:
                break
            if enc.bpp >= target:
                lo = mid
            else:
                hi = mid
        floor = ceiling = False
        if best_err > self.tolerance:
            e_lo, e_hi = (
                self.encode(self._q(lo)),
                self.encode(self._q(hi)),
            )  # the ends are encoded only when the search reached them
            ceiling = lo == math.ceil(q_min) and e_lo.bpp < target
            floor = hi == math.floor(q_max) and e_hi.bpp > target
            if self.codec.q_step < 1 and not (floor or ceiling) and e_lo.bpp >= target > e_hi.bpp:
                a, b = float(lo), float(hi)
                for _ in range(self.refine_steps):
                    mid = self.snap((a + b) / 2)
                    if mid in (a, b):
                        break
                    enc = self.encode(self._q(mid))
                    if abs(self.error(enc, target)) <= self.tolerance:
                        break
                    if enc.bpp >= target:
                        a = mid
                    else:
                        b = mid
        best = min(self.cache.values(), key=lambda e: (abs(self.error(e, target)), e.setting))
        err = self.error(best, target)
        within = abs(err) <= self.tolerance
        reason = None if within else self._reason(target, floor, ceiling)
        tried = [(q, self.cache[q].bpp) for q in sorted(set(self.cache) - before)]
        return MatchResult(target, best, err, within, reason, tried)

    def _match_requested(self, target: float) -> MatchResult:
        """Rate-control codecs: the setting is the requested rate (bpp); see the module docstring."""
        before = set(self.cache)
        q_min, q_max = self.codec.q_range
        request = self.snap(target)
        below: float | None = None  # largest request that came out under the target
        above: float | None = None  # smallest request that came out at or over the target
        for _ in range(self.refine_steps + 2):
            enc = self.encode(request)
            if abs(self.error(enc, target)) <= self.tolerance:
                break
            if enc.bpp < target:
                below = request if below is None else max(below, request)
            else:
                above = request if above is None else min(above, request)
            proposal = request * target / max(enc.bpp, 1e-12)
            if below is not None and above is not None and not below < proposal < above:
                proposal = math.sqrt(below * above)
            proposal = self.snap(proposal)
            if proposal in self.cache:
                break
            request = proposal
        best = min(self.cache.values(), key=lambda e: (abs(self.error(e, target)), e.setting))
        err = self.error(best, target)
        within = abs(err) <= self.tolerance
        reason = None
        if not within:
            tried = sorted((q, self.cache[q].bpp) for q in set(self.cache) - before)
            limit = (" (the request reached the end of q_range)"
                     if any(q in (q_min, q_max) for q, _ in tried) else "")  # fmt: skip
            reason = (f"{self.codec.name}'s rate control gave " + ", ".join(f"{b:.4f} bpp for {q:g} asked" for q, b in tried)
                      + f"; closest {best.bpp:.4f} bpp ({err:+.1%}){limit}")  # fmt: skip
        tried = [(q, self.cache[q].bpp) for q in sorted(set(self.cache) - before)]
        return MatchResult(target, best, err, within, reason, tried)

    def _reason(self, target: float, floor: bool, ceiling: bool) -> str:
        q_min, q_max = self.codec.q_range
        name, fmt = self.codec.name, self.codec.format_q
        if floor:
            enc = self.cache[self.snap(self._q(math.floor(q_max)))]
            return (f"encoder floor: {name} gives {enc.bpp:.4f} bpp at its lowest-rate setting q={fmt(enc.setting)}, "
                    f"above the target {target:g}")  # fmt: skip
        if ceiling:
            enc = self.cache[self.snap(self._q(math.ceil(q_min)))]
            return (f"encoder ceiling: {name} gives {enc.bpp:.4f} bpp at its highest-rate setting "
                    f"q={fmt(enc.setting)}, below the target {target:g}")  # fmt: skip
        above = [e for e in self.cache.values() if e.bpp >= target]
        below = [e for e in self.cache.values() if e.bpp < target]
        if above and below:
            a = min(above, key=lambda e: e.bpp)
            b = max(below, key=lambda e: e.bpp)
            step = self.codec.q_step
            return (f"no setting in between: q={fmt(a.setting)} gives {a.bpp:.4f} bpp ({self.error(a, target):+.1%}), "
                    f"q={fmt(b.setting)} gives {b.bpp:.4f} bpp ({self.error(b, target):+.1%}); {name} takes q in "
                    f"steps of {step:g}" + ("" if step >= 1 or abs(a.setting - b.setting) <= step + 1e-9
                                             else f" (refinement stopped after {self.refine_steps} steps)"))  # fmt: skip
        return "rate is not monotonic in q for this clip; the closest encode is kept"

    def cleanup(self, keep: set[Path] | None = None) -> None:
        """Delete the files of every cached encode except those in ``keep``."""
        keep = keep or set()
        for enc in self.cache.values():
            if enc.path not in keep and enc.path.exists():
                enc.path.unlink()
