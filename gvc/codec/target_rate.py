"""Encode at a requested file rate (`gvc encode --bpp B`): the quality level q of a variable-rate model.

A trained variable-rate model's rate rises with q (gvc.models.gains; measured in BENCHMARKS.md), so the q giving
B bits per pixel on the footage at hand is searched on log(bpp) against q:

1. Probes. The coder itself (`FrameCoder.encode`: real strings, the decoder's reconstruction as the next
   frame's reference, nothing written) on a sample of the clip: `probe_frames` evenly spaced frames for an
   intra-only model, the first `probe_frames` frames (the low-delay chain from the I-frame) for a video model;
   the predicted file bpp is the sample's packet bytes plus the header. The first probe is where the model's
   trained curve (its per-level targets, from its training record) has B; the second follows that curve's
   shape shifted through the first (real footage costs a roughly constant factor more or less than the training
   crops); until the goal is bracketed, each later probe extrapolates the secant through the two probes nearest
   B (the footage's own slope), then secant steps within the bracket. A clip of at
   most `probe_frames` frames is its own sample: the probes then run to the tolerance itself, and the accepted
   probe's packets are written as the file without another encode.
2. Encode the clip at the q the probes give (on the packet's 1/256 grid), then measure the FILE. Within
   `tolerance` of B: done. Otherwise the probes' curve is recalibrated by file bpp / predicted bpp at that q
   (what the sample misses of the rest of the clip) and the search goes on; at most `max_encodes` encodes.

A target outside what the model reaches on the footage (below q = 0 or above q = rate_levels - 1) is refused with
the reachable range, before any file is written. Every encode writes a temporary file next to `out`; only the
accepted one replaces `out`.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from gvc.codec.bitstream import HEADER_BYTES, quantize_quality
from gvc.codec.coder import (
    EncodeStats,
    FrameCoder,
    deterministic,
    encode_video,
    entropy_placement,
    eval_mode,
    is_video_model,
    pad_frame,
    padded_size,
    rate_levels,
    size_multiple,
    write_packets,
)
from gvc.errors import GVCError

#: probes stop within this fraction of the requested tolerance of the (recalibrated) target [ours]
PROBE_FRACTION = 1 / 3
#: ... and within this fraction of it when the sample is the whole clip (the probe is then the file) [ours]
EXACT_FRACTION = 0.9
MAX_PROBES = 10
#: the prior slope of log bpp per quality level when the model's targets are unknown [ours]: 8x over 8 levels
DEFAULT_LOG_SLOPE = math.log(8) / 7


@dataclass
class RateSearch:
    """How `encode_at_bpp` found its q. probes: (q, predicted bpp) of each probe; encodes: (q, file bpp) of
    each encode, the last one kept; quality: the q of the file; stats: its EncodeStats; seconds: the whole
    search (probes and encodes)."""

    target_bpp: float
    tolerance: float
    quality: float
    stats: EncodeStats
    probes: list[tuple[float, float]] = field(default_factory=list)
    encodes: list[tuple[float, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def file_bpp(self) -> float:
        return self.stats.bpp

    @property
    def relative_error(self) -> float:
        return self.file_bpp / self.target_bpp - 1.0

    @property
    def on_target(self) -> bool:
        return abs(self.relative_error) <= self.tolerance

    def to_dict(self) -> dict:
        return {
            "target_bpp": self.target_bpp,
            "tolerance": self.tolerance,
            "quality": self.quality,
            "file_bpp": self.file_bpp,
            "relative_error": self.relative_error,
            "on_target": self.on_target,
            "probes": [list(p) for p in self.probes],
            "encodes": [list(e) for e in self.encodes],
            "seconds": self.seconds,
        }


class _Prober:
    """Predicted file bpp at q: the coder's packets for a sample of the clip (frames kept in memory).
    `cache` {q: predicted bpp} in probe order. When the sample is the whole clip (`complete`), each probe's
    packets are kept (`packets` {q: [(packet, estimated bits)]}): the file at that q is then written from them."""

    def __init__(
        self, reader, model: nn.Module, frames: int, gop: int | None, probe_frames: int, portable: bool
    ):
        self.model = model
        self.placement = entropy_placement(portable)
        self.video = is_video_model(model)
        self.gop = (0 if gop is None or gop <= 0 else int(gop)) if self.video else 1
        n = frames
        if self.video:
            indices = list(range(min(n, probe_frames)))
        else:
            k = min(n, probe_frames)
            indices = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})
        pw, ph = padded_size(reader.width, reader.height, size_multiple(model))
        device = next(model.parameters()).device
        self.frames = [pad_frame(reader.read_rgb(i).to(device)[None], pw, ph) for i in indices]
        self.pixels = reader.width * reader.height
        self.cache: dict[float, float] = {}
        self.complete = len(indices) == n
        self.packets: dict[float, list] = {}

    def __call__(self, q: float) -> float:
        q = quantize_quality(q)
        if q not in self.cache:
            coder = FrameCoder(self.model, self.placement, self.gop, q)
            nbytes, coded = HEADER_BYTES, []
            with torch.no_grad(), deterministic(), eval_mode(self.model):
                for x in self.frames:
                    packet, est = coder.encode(x, estimate=self.complete)
                    nbytes += len(packet.to_bytes())
                    coded.append((packet, est))
            self.cache[q] = 8 * nbytes / (len(self.frames) * self.pixels)
            if self.complete:
                self.packets[q] = coded
        return self.cache[q]


class _Prior:
    """The shape of a model's rate curve: log bpp against q, piecewise linear through the model's trained per-level
    targets (`targets`), or a line of slope DEFAULT_LOG_SLOPE per level when they are unknown. Real footage costs
    a roughly constant factor more or less than the training crops, so the curve is used shifted by that factor."""

    def __init__(self, targets: list[float] | None, levels: int):
        self.top = float(levels - 1)
        if targets and len(targets) == levels:
            self.logs = [math.log(t) for t in targets]
        else:
            self.logs = [k * DEFAULT_LOG_SLOPE for k in range(levels)]

    def __call__(self, q: float) -> float:
        k = min(int(q), len(self.logs) - 2)
        return self.logs[k] + (q - k) * (self.logs[k + 1] - self.logs[k])

    def inverse(self, value: float) -> float:
        """The q in [0, levels - 1] where the curve is `value` (clamped to the ends)."""
        if value <= self.logs[0]:
            return 0.0
        for k in range(len(self.logs) - 1):
            a, b = self.logs[k], self.logs[k + 1]
            if a <= value <= b and b > a:
                return k + (value - a) / (b - a)
        return self.top


def _search(predict, goal: float, levels: int, q0: float, prior: _Prior, tolerance: float) -> float:
    """q in [0, levels - 1] with log predict(q) within log(1 + tolerance) of goal (a log bpp). The first step
    moves along the model's own curve shape (`prior`) shifted through the first probe; until the goal is
    bracketed, each later step extrapolates the secant through the two probes nearest the goal (the footage's own
    slope; the prior again where that slope is not positive); once bracketed, secant steps on log bpp against q
    between the closest probes on either side. The closest
    probe after MAX_PROBES or when the q grid cannot split the bracket; _Unreachable when the goal lies outside
    [predict(0), predict(levels - 1)]."""
    top = float(levels - 1)
    points: dict[float, float] = {}  # q -> log predict(q) - goal
    q = quantize_quality(min(max(q0, 0.0), top))
    for _ in range(MAX_PROBES):
        fq = points[q] = math.log(predict(q)) - goal
        if abs(fq) <= math.log1p(tolerance):
            return q
        below = [(a, f) for a, f in points.items() if f < 0]
        above = [(a, f) for a, f in points.items() if f > 0]
        if below and above:
            (q_lo, f_lo), (q_hi, f_hi) = max(below), min(above)
            nxt = q_lo - f_lo * (q_hi - q_lo) / (f_hi - f_lo)
        else:
            if not below and q == 0.0:
                raise _Unreachable("below")
            if not above and q == top:
                raise _Unreachable("above")
            (q_near, f_near), *rest = sorted(points.items(), key=lambda p: abs(p[1]))
            slope = (f_near - rest[0][1]) / (q_near - rest[0][0]) if rest else 0.0
            if slope > 0:  # the footage's own slope, from the two probes nearest the goal (secant, outside)
                nxt = q_near - f_near / slope
            else:  # one probe: the model's curve shape, shifted through it
                shift = (f_near + goal) - prior(q_near)  # log of footage rate / trained rate at that level
                nxt = prior.inverse(goal - shift)
            if quantize_quality(nxt) in points:  # the estimate says here again: step past it
                nxt = q_near + (1.0 if f_near < 0 else -1.0)
        nxt = quantize_quality(min(max(nxt, 0.0), top))
        if nxt in points:  # the grid cannot split the bracket further
            break
        q = nxt
    return min(points, key=lambda a: abs(points[a]))


class _Unreachable(GVCError):
    def __init__(self, side: str):
        self.side = side
        super().__init__(side)


def encode_at_bpp(
    source,
    model: nn.Module,
    out,
    target_bpp: float,
    *,
    tolerance: float = 0.03,
    max_encodes: int = 3,
    probe_frames: int = 16,
    targets: list[float] | None = None,
    gop: int | None = None,
    frames: int | None = None,
    progress: bool = False,
    **encode_kwargs,
) -> RateSearch:
    """Encode `source` with a variable-rate `model` into `out` (a path, or a writable binary file object that
    gets the accepted file's bytes) at `target_bpp` (file bits per source pixel) within `tolerance` (relative)
    when the search reaches it in `max_encodes` encodes (RateSearch.on_target says whether it did; the closest
    file is kept). targets: the model's trained per-level targets (its training record), for the first guess.
    gop, frames, progress and encode_kwargs (width, height, fps, matrix, full_range, portable_entropy, ...):
    as `encode_video`. GVCError for a single-rate model, a bad target or one the model cannot reach here.
    """
    from gvc.data.io import VideoReader, open_video

    levels = rate_levels(model)
    if not levels:
        raise GVCError(
            "--bpp needs a variable-rate model (trained with rate=multi); this model codes one rate"
        )
    if not (math.isfinite(target_bpp) and target_bpp > 0):
        raise GVCError(f"--bpp {target_bpp}: give a positive number of bits per pixel")
    if not 0 < tolerance < 1 or max_encodes < 1 or probe_frames < 1:
        raise GVCError("need 0 < tolerance < 1, max_encodes >= 1 and probe_frames >= 1")
    reader_opts = {
        k: encode_kwargs.pop(k)
        for k in ("width", "height", "fps", "matrix", "full_range")
        if k in encode_kwargs
    }
    own_reader = not isinstance(source, VideoReader)
    reader = open_video(source, **reader_opts) if own_reader else source
    t0 = time.perf_counter()
    try:
        n = len(reader) if frames is None else min(int(frames), len(reader))
        if n <= 0:
            raise GVCError(f"{reader.path}: nothing to encode ({len(reader)} frames, --frames {frames})")
        portable = bool(encode_kwargs.get("portable_entropy", True))
        prober = _Prober(reader, model, n, gop, probe_frames, portable)
        encodes: list[tuple[float, float]] = []
        calibration = 1.0
        prior = _Prior(targets, levels)
        # the first probe: where the trained curve has the target (the middle level without trained targets)
        q = prior.inverse(math.log(target_bpp)) if targets and len(targets) == levels else (levels - 1) / 2
        # a sample that is the whole clip predicts the file exactly: search to the tolerance itself
        search_tolerance = tolerance * (EXACT_FRACTION if prober.complete else PROBE_FRACTION)
        best: tuple[float, Path, EncodeStats] | None = None
        stream = hasattr(out, "write")
        folder = Path(tempfile.gettempdir()) if stream else Path(out).resolve().parent
        folder.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=".gvc-rate-", dir=folder))
        try:
            for k in range(max_encodes):
                goal = math.log(target_bpp / calibration)
                try:
                    q = _search(prober, goal, levels, q, prior, search_tolerance)
                except _Unreachable as e:
                    if best is not None:  # an encode exists: keep the closest one
                        break
                    ends = f"{prober(0):.4f} .. {prober(levels - 1):.4f}"
                    raise GVCError(
                        f"--bpp {target_bpp:g} is {e.side} what this model codes on this video (about {ends} bpp, "
                        f"q 0 .. {levels - 1}, estimated on {len(prober.frames)} frames)"
                    ) from None
                q = quantize_quality(q)
                path = tmpdir / f"try{k}.gvc"
                if (
                    q in prober.packets
                ):  # the probe coded the whole clip at this q: those are the file's packets
                    stats = write_packets(reader, model, path, prober.packets[q], gop, portable, q)
                else:
                    stats = encode_video(
                        reader, model, path, gop, n, progress=progress, quality=q, **encode_kwargs
                    )
                encodes.append((q, stats.bpp))
                err = abs(stats.bpp / target_bpp - 1)
                if best is None or err < abs(best[2].bpp / target_bpp - 1):
                    best = (q, path, stats)
                if err <= tolerance:
                    break
                calibration = stats.bpp / prober(q)
            q, path, stats = best
            if stream:
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out)
                out.flush()
                stats.path = getattr(out, "name", "<stream>")
            else:
                path.replace(out)
                stats.path = str(out)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        probes = list(prober.cache.items())
        return RateSearch(target_bpp, tolerance, q, stats, probes, encodes, time.perf_counter() - t0)
    finally:
        if own_reader:
            reader.close()


__all__ = ["RateSearch", "encode_at_bpp"]
