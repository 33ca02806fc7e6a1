"""One gvc model file on one video, through a real file: encode -> .gvc on disk -> decode -> metrics.

The same path `evaluate.py` takes for a gvc point (:class:`gvc.eval.codecs.GVCCodec` encodes and decodes with
`gvc.codec.coder`, :class:`gvc.eval.source.SourceVideo` reads the source in its own colour convention,
:class:`gvc.eval.metrics.MetricSuite` scores the 8-bit planes and RGB), without the result store and the
baselines: what a benchmark calls to score a model it trained. The bpp is the file's size in bits over the
source's pixels; a variable-rate model is measured at one quality level (``quality``, as evaluate.py's
setting ``<model>@q<q>``). :func:`drift_db` and :func:`p_over_i_bits` read a point's per-frame columns; the motion figures
(decoded-flow EPE, zero motion, the oracle-flow bound) are :mod:`gvc.eval.motion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gvc.data.io import YUVFrame
from gvc.errors import ConfigError
from gvc.eval.codecs.gvc_codec import GVCCodec
from gvc.eval.metrics import MetricSuite
from gvc.eval.source import SourceVideo

#: what a benchmark point reports unless told otherwise: PSNR (RGB, Y, U, V, YUV 6:1:1) and the plane shifts
DEFAULT_METRICS = ("psnr", "plane_mean")


@dataclass(frozen=True)
class ModelPoint:
    """One coded video: ``bpp`` (file bits / source pixels), ``bytes``, ``frames``, ``summary`` (column -> mean
    over frames), ``per_frame`` (column -> values), ``frame_bits`` (packet bits per frame, in coding order),
    ``frame_types`` ("I" / "P"), ``unavailable`` (metric -> why not), ``encode_s`` (seconds of the encode),
    ``refine`` (with a refiner: the refined frames' reports), ``width`` / ``height`` (the source's, pixels),
    ``quality`` (the q a variable-rate model coded, on the packet grid; None for a single-rate model),
    ``decoded`` (with ``keep_decoded``: the decoded 8-bit 4:2:0 frames; never in :meth:`as_dict`)."""

    video: str
    bpp: float
    bytes: int
    frames: int
    summary: dict[str, float]
    per_frame: dict[str, list[float]]
    frame_bits: list[int]
    frame_types: list[str]
    unavailable: dict[str, str] = field(default_factory=dict)
    encode_s: float = 0.0
    refine: list[dict[str, Any]] = field(default_factory=list)
    width: int = 0
    height: int = 0
    quality: float | None = None
    decoded: list[YUVFrame] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "bpp": self.bpp,
            "bytes": self.bytes,
            "frames": self.frames,
            "summary": dict(self.summary),
            "per_frame": {k: list(v) for k, v in self.per_frame.items()},
            "frame_bits": list(self.frame_bits),
            "frame_types": list(self.frame_types),
            "unavailable": dict(self.unavailable),
            "encode_s": self.encode_s,
            "refine": list(self.refine),
            "width": self.width,
            "height": self.height,
            "quality": self.quality,
        }


def measure_model(
    model: str | Path,
    video: str | Path,
    work_dir: str | Path,
    gop: int = -1,
    metrics: Sequence[str] = DEFAULT_METRICS,
    frames: int | None = None,
    colour: Mapping[str, Any] | None = None,
    metric_options: Mapping[str, Mapping[str, Any]] | None = None,
    suite: MetricSuite | None = None,
    device: str = "cpu",
    refiner=None,
    keep_decoded: bool = False,
    quality: float | None = None,
) -> ModelPoint:
    """Code ``video`` (its first ``frames`` frames, all when None) with the model file ``model`` into
    ``work_dir/<video stem>.gvc`` with GOP ``gop`` (-1: one I-frame; 1: all intra), decode it, and score it.

    ``colour``: the reading convention (matrix, full_range, chroma_upsample; None entries: what the file
    states). ``suite``: a prebuilt MetricSuite (perceptual networks load once), else one of ``metrics``.
    ``device``: where the model runs. ``refiner``: a gvc.codec.refine.LatentRefiner (`gvc encode
    --refine-steps N`), None: none. ``keep_decoded``: also return the decoded frames (``ModelPoint.decoded``).
    ``quality``: the quality level q of a variable-rate model (`gvc encode --q`; required for one, refused for a
    single-rate model: ConfigError), written to ``work_dir/<model label>@q<q>.gvc``, as evaluate.py's setting of
    that q.
    """
    codec = GVCCodec([model], gop=gop, device=device, refiner=refiner,
                     qualities=None if quality is None else [quality])  # fmt: skip
    levels = codec.levels[codec.model_labels[0]]
    if levels and quality is None:
        raise ConfigError(
            f"{model}: a variable-rate model ({levels} rate levels): give the quality level to measure "
            f"(quality=q, 0 .. {levels - 1})"
        )
    if not levels and quality is not None:
        raise ConfigError(
            f"{model}: this model codes one rate; quality={quality} needs a variable-rate model"
        )
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    src = SourceVideo(Path(video), frames, dict(colour or {}), work)
    (label,) = codec.labels
    stream = work / f"{label}.gvc"
    encoded = codec.encode(src, label, stream)
    decoded = codec.decode(stream, src)
    records = codec.frame_records(stream, src)
    suite = suite or MetricSuite(metrics, metric_options)
    scores = suite.evaluate(src.pairs(decoded), src.width, src.height, src.fps, features=False)
    size = stream.stat().st_size
    return ModelPoint(
        video=src.name,
        bpp=8.0 * size / src.pixels,
        bytes=size,
        frames=src.count,
        summary=dict(scores.summary),
        per_frame={k: [float(x) for x in v] for k, v in scores.per_frame.items()},
        frame_bits=[int(r.bits) for r in records],
        frame_types=[str(r.type) for r in records],
        unavailable=dict(scores.unavailable),
        encode_s=float(encoded.encode_s),
        refine=list(encoded.extra.get("refine", [])),
        width=src.width,
        height=src.height,
        quality=encoded.extra.get("q"),
        decoded=decoded if keep_decoded else None,
    )


def drift_frames(frames: int, later: int = 30, early: int = 2) -> tuple[int, int] | None:
    """The two 1-based frames whose PSNR difference is the drift in a clip of ``frames`` frames: (``early``,
    ``later``), ``later`` clipped to the last frame; None when that leaves nothing after ``early``."""
    last = min(int(later), int(frames))
    return (int(early), last) if last > early >= 1 else None


def drift_db(per_frame: Sequence[float], later: int = 30, early: int = 2) -> float | None:
    """Drift in dB: the quality of frame ``later`` (1-based; the last frame when the clip is shorter) minus that
    of frame ``early`` (frame 2: the first P-frame after the I-frame), from a per-frame column such as
    ``ModelPoint.per_frame["psnr_y"]``. Negative = quality falls along the GOP. None when the clip has no
    frame after ``early``."""
    pair = drift_frames(len(per_frame), later, early)
    return None if pair is None else float(per_frame[pair[1] - 1]) - float(per_frame[pair[0] - 1])


def p_over_i_bits(frame_bits: Sequence[float], frame_types: Sequence[str]) -> float | None:
    """Mean bits of a P-frame over mean bits of an I-frame (``ModelPoint.frame_bits`` / ``frame_types``);
    None when the stream lacks either type."""
    if len(frame_bits) != len(frame_types):
        raise ValueError(f"{len(frame_bits)} frame sizes for {len(frame_types)} frame types")
    i_bits = [float(b) for b, t in zip(frame_bits, frame_types) if t == "I"]
    p_bits = [float(b) for b, t in zip(frame_bits, frame_types) if t == "P"]
    if not i_bits or not p_bits:
        return None
    return (sum(p_bits) / len(p_bits)) / (sum(i_bits) / len(i_bits))
