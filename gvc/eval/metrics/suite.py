"""The configured set of metrics for one run: builds each (or its "unavailable" stand-in) and scores a video."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gvc.errors import ConfigError, MissingWeightsError
from gvc.eval.metrics.base import Frame, Metric, UnavailableMetric
from gvc.eval.metrics.detail import DetailMetric
from gvc.eval.metrics.distribution import InceptionPatchFeatures
from gvc.eval.metrics.fidelity import MSSSIMMetric, PlaneMeanMetric, PSNRMetric
from gvc.eval.metrics.perceptual import LPIPSMetric, PIMMetric, STLPIPSMetric, STLPIPSVGGMetric
from gvc.eval.metrics.temporal import TLPMetric, WarpErrorMetric
from gvc.eval.metrics.vmaf import VMAFMetric

FRAME_METRICS: dict[str, type[Metric]] = {
    "psnr": PSNRMetric,
    "plane_mean": PlaneMeanMetric,
    "ms_ssim": MSSSIMMetric,
    "detail": DetailMetric,
    "lpips": LPIPSMetric,
    "st_lpips": STLPIPSMetric,
    "st_lpips_vgg": STLPIPSVGGMetric,
    "pim": PIMMetric,
    "vmaf": VMAFMetric,
    "warp_error": WarpErrorMetric,
    "tlp": TLPMetric,
}
SET_METRICS = ("fid", "kid")
ALL_METRICS = tuple(FRAME_METRICS) + SET_METRICS


def metric_columns(name: str) -> tuple[str, ...]:
    """Result columns written by metric ``name``."""
    if name in SET_METRICS:
        return (name,)
    return FRAME_METRICS[name].columns


@dataclass
class VideoScores:
    """Result of one decoded video: per-frame values, means, patch features (or None) and unavailable metrics."""

    per_frame: dict[str, list[float]]
    summary: dict[str, float]
    unavailable: dict[str, str]
    features: np.ndarray | None
    info: dict[str, Any]


class MetricSuite:
    """The configured metrics. Construction never fails for a missing weight file or tool: that metric becomes
    :class:`UnavailableMetric` with the reason, reported as ``{"unavailable": reason}``.

    ``options`` maps a metric name to constructor keyword arguments (from conf/evaluate.yaml ``metrics``).
    """

    def __init__(self, names: Iterable[str], options: Mapping[str, Mapping[str, Any]] | None = None):
        options = options or {}
        self.names = list(names)
        unknown = [n for n in self.names if n not in ALL_METRICS]
        if unknown:
            raise ConfigError(f"unknown metrics {unknown}; known: {list(ALL_METRICS)}")
        self.metrics: dict[str, Metric] = {}
        self.unavailable: dict[str, UnavailableMetric] = {}
        for name in self.names:
            if name in SET_METRICS:
                continue
            try:
                self.metrics[name] = FRAME_METRICS[name](**dict(options.get(name, {})))
            except (MissingWeightsError, ImportError, OSError) as err:
                self.unavailable[name] = UnavailableMetric(name, str(err))
        self.features: InceptionPatchFeatures | None = None
        if any(n in SET_METRICS for n in self.names):
            try:
                self.features = InceptionPatchFeatures(**dict(options.get("fid", {})))
            except (MissingWeightsError, ImportError, OSError) as err:
                for n in SET_METRICS:
                    if n in self.names:
                        self.unavailable[n] = UnavailableMetric(n, str(err))

    def info(self) -> dict[str, Any]:
        out = {name: metric.info() for name, metric in self.metrics.items()}
        out.update({name: m.result() for name, m in self.unavailable.items()})
        return out

    def evaluate(
        self, pairs: Iterable[tuple[Frame, Frame]], width: int, height: int, fps: float, features: bool = True
    ) -> VideoScores:
        """Run every available metric over ``(source, decoded)`` frame pairs of one video.

        A metric that fails on this video (e.g. ffmpeg error) is reported unavailable with the error; the others
        still count. ``features``: also collect Inception patch features of the decoded frames for FID/KID.
        """
        for metric in self.metrics.values():
            metric.begin(width, height, fps)
        failed: dict[str, str] = {}
        feats: list[np.ndarray] = []
        for ref, dist in pairs:
            for name, metric in self.metrics.items():
                if name in failed:
                    continue
                try:
                    metric.add(ref, dist)
                except (RuntimeError, ValueError, ConfigError) as err:
                    failed[name] = f"{type(err).__name__}: {err}"
            if features and self.features is not None:
                feats.append(self.features(dist.rgb))
        per_frame: dict[str, list[float]] = {}
        for name, metric in self.metrics.items():
            if name in failed:
                continue
            try:
                per_frame.update(metric.end())
            except (RuntimeError, ValueError) as err:
                failed[name] = f"{type(err).__name__}: {err}"
        # temporal metrics have no value (NaN) for frame 0: the clip value is the mean over the frames that have one
        summary = {
            col: float(np.nanmean(vals))
            for col, vals in per_frame.items()
            if vals and not np.all(np.isnan(np.asarray(vals, dtype=float)))
        }
        unavailable = {name: m.reason for name, m in self.unavailable.items()}
        unavailable.update(failed)
        feature_array = np.concatenate(feats) if feats else None
        return VideoScores(per_frame, summary, unavailable, feature_array, self.info())
