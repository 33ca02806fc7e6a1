"""One gvc model file on one video, through a real file: encode -> .gvc on disk -> decode -> metrics.

The same path `evaluate.py` takes for a gvc point (:class:`gvc.eval.codecs.GVCCodec` encodes and decodes with
`gvc.codec.coder`, :class:`gvc.eval.source.SourceVideo` reads the source in its own colour convention,
:class:`gvc.eval.metrics.MetricSuite` scores the 8-bit planes and RGB), without the result store and the
baselines: what a benchmark calls to score a model it trained. The bpp is the file's size in bits over the
source's pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gvc.eval.codecs.gvc_codec import GVCCodec
from gvc.eval.metrics import MetricSuite
from gvc.eval.source import SourceVideo

#: what a benchmark point reports unless told otherwise: PSNR (RGB, Y, U, V, YUV 6:1:1) and the plane shifts
DEFAULT_METRICS = ("psnr", "plane_mean")


@dataclass(frozen=True)
class ModelPoint:
    """One coded video: ``bpp`` (file bits / source pixels), ``bytes``, ``frames``, ``summary`` (column -> mean
    over frames), ``per_frame`` (column -> values), ``frame_bits`` (packet bits per frame, in coding order),
    ``frame_types`` ("I" / "P"), ``unavailable`` (metric -> why not)."""

    video: str
    bpp: float
    bytes: int
    frames: int
    summary: dict[str, float]
    per_frame: dict[str, list[float]]
    frame_bits: list[int]
    frame_types: list[str]
    unavailable: dict[str, str] = field(default_factory=dict)

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
) -> ModelPoint:
    """Code ``video`` (its first ``frames`` frames, all when None) with the model file ``model`` into
    ``work_dir/<video stem>.gvc`` with GOP ``gop`` (-1: one I-frame; 1: all intra), decode it, and score it.

    ``colour``: the reading convention (matrix, full_range, chroma_upsample; None entries: what the file
    states). ``suite``: a prebuilt MetricSuite (perceptual networks load once), else one of ``metrics``.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    src = SourceVideo(Path(video), frames, dict(colour or {}), work)
    codec = GVCCodec([model], gop=gop)
    label = codec.labels[0]
    stream = work / f"{label}.gvc"
    codec.encode(src, label, stream)
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
    )
