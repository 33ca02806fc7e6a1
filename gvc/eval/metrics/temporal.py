"""Temporal metrics: what a per-frame metric cannot see (flicker, boiling texture, detail that is re-invented each
frame instead of propagated). Both compare how the decoded video changes from frame to frame with how the source
changes, so a perfect reconstruction scores 0 and a source that itself changes a lot is not held against a codec.

- ``warp_error``: the warping error under the **source's** motion. For each frame t >= 1 the source's optical
  flow from frame t to t - 1 (OpenCV DIS on luma, computed once per clip and shared by every codec) warps frame
  t - 1 onto frame t; the error is the mean absolute RGB difference (in 8-bit levels) between frame t and the
  warped frame t - 1, over the pixels whose flow is forward-backward consistent and stays inside the frame
  (occlusions excluded). ``warp_error`` = that error on the decoded video minus the same error on the source:
  0 = as temporally consistent as the source; > 0 = changes the source's motion does not explain (flicker);
  < 0 = smoother in time than the source (e.g. the source's own noise removed).
- ``tlp``: tLP (TecoGAN) with ST-LPIPS as the distance: ``|D(dec_t, dec_{t-1}) - D(src_t, src_{t-1})|``, where
  D is ST-LPIPS (AlexNet, the weights shipped in stlpips-pytorch). 0 = the decoded frames differ from their
  predecessors perceptually as much as the source's frames do.

Frame 0 has no predecessor: its per-frame value is NaN; clip values are means over frames 1..N-1.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch

from gvc.eval.metrics.base import Frame, Metric
from gvc.eval.metrics.perceptual import STLPIPSMetric

#: DIS presets by name (OpenCV constants)
_DIS_PRESETS = ("ultrafast", "fast", "medium")


def _rgb255(frame: Frame) -> np.ndarray:
    """(H, W, 3) float32 in [0, 255] of a Frame's RGB tensor."""
    return (frame.rgb[0].permute(1, 2, 0).float().cpu().numpy() * 255.0).astype(np.float32)


def _digest(plane: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(plane).tobytes(), digest_size=16).digest()


class SourceFlow:
    """DIS optical flow between consecutive source frames with a forward-backward occlusion mask; results are
    kept per (frame t - 1, frame t) content, so every codec of a clip reuses the flow of the source."""

    def __init__(self, preset: str = "medium", max_cached: int = 1024):
        if preset not in _DIS_PRESETS:
            from gvc.errors import ConfigError

            raise ConfigError(
                f"warp_error: DIS preset {preset!r} unknown; choose one of {list(_DIS_PRESETS)}"
            )
        self.preset = preset
        self.max_cached = max_cached
        self._cache: dict[tuple[bytes, bytes], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._dis = None

    def _calc(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import cv2

        if self._dis is None:
            const = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                     "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[self.preset]  # fmt: skip
            self._dis = cv2.DISOpticalFlow_create(const)
        return self._dis.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None)

    def __call__(self, prev_y: np.ndarray, cur_y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(map_x, map_y, mask) that warp frame t - 1 onto frame t: ``warped(x) = prev(x + flow(x))``, where
        flow is DIS from ``cur_y`` to ``prev_y``; ``mask`` (H, W) bool: consistent and inside the frame."""
        key = (_digest(prev_y), _digest(cur_y))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        import cv2

        h, w = cur_y.shape
        fwd = self._calc(cur_y, prev_y)  # t -> t-1
        bwd = self._calc(prev_y, cur_y)  # t-1 -> t
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = gx + fwd[..., 0], gy + fwd[..., 1]
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        back = cv2.remap(bwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # forward-backward consistency (Sundaram et al. 2010): the round trip must come back near its start
        gap = np.sum((fwd + back) ** 2, axis=-1)
        scale = np.sum(fwd**2, axis=-1) + np.sum(back**2, axis=-1)
        mask = inside & (gap <= 0.01 * scale + 0.5)
        out = (map_x, map_y, mask)
        if len(self._cache) >= self.max_cached:
            self._cache.clear()
        self._cache[key] = out
        return out


def warp_l1(prev: np.ndarray, cur: np.ndarray, maps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """Mean |cur - warp(prev)| over the masked pixels of (H, W, 3) arrays; NaN when no pixel is valid."""
    import cv2

    map_x, map_y, mask = maps
    if not mask.any():
        return math.nan
    warped = cv2.remap(prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return float(np.abs(cur - warped)[mask].mean())


class ConsecutiveFrameMetric(Metric):
    """A metric of each frame t >= 1 with frame t-1 (source and decoded): NaN for frame 0, then
    `pair(prev_ref, prev_dist, ref, dist)` -> the value of the one column."""

    def begin(self, width: int, height: int, fps: float) -> None:
        super().begin(width, height, fps)
        self._prev: tuple[Frame, Frame] | None = None

    def pair(self, pref: Frame, pdist: Frame, ref: Frame, dist: Frame) -> float:
        raise NotImplementedError

    def add(self, ref: Frame, dist: Frame) -> None:
        value = math.nan if self._prev is None else self.pair(*self._prev, ref, dist)
        self._values[self.columns[0]].append(value)
        self._prev = (ref, dist)


class WarpErrorMetric(ConsecutiveFrameMetric):
    """Warping error of the decoded video under the source's DIS flow, minus the source's own (module docstring).

    Columns: ``warp_error`` (lower is better, 0 = as consistent as the source) per frame t >= 1.
    """

    name = "warp_error"
    columns = ("warp_error",)

    def __init__(self, preset: str = "medium"):
        self.flow = SourceFlow(preset)

    def info(self) -> dict[str, Any]:
        return {"flow": f"OpenCV DIS ({self.flow.preset}) of the source, frame t -> t-1, luma",
                "error": "mean |RGB| in 8-bit levels over forward-backward consistent pixels, decoded minus "
                         "source"}  # fmt: skip

    def pair(self, pref: Frame, pdist: Frame, ref: Frame, dist: Frame) -> float:
        maps = self.flow(pref.y, ref.y)
        e_dist = warp_l1(_rgb255(pdist), _rgb255(dist), maps)
        e_src = warp_l1(_rgb255(pref), _rgb255(ref), maps)
        return e_dist - e_src


class TLPMetric(ConsecutiveFrameMetric):
    """tLP (TecoGAN) with ST-LPIPS as the distance: per frame t >= 1, ``|D(dec_t, dec_{t-1}) - D(src_t,
    src_{t-1})|`` (lower is better, 0 = the decoded video changes as perceptually as the source does)."""

    name = "tlp"
    columns = ("tlp",)

    def __init__(self, net: str = "alex", device: str = "cpu"):
        self.distance = STLPIPSMetric(net=net, device=device)  # MissingWeightsError -> unavailable
        self.device = self.distance.device
        self._source: dict[tuple[bytes, bytes], float] = {}

    def info(self) -> dict[str, Any]:
        return {
            "distance": self.distance.info()["variant"],
            "definition": "|D(dec_t, dec_t-1) - D(src_t, src_t-1)|",
        }

    @torch.no_grad()
    def _d(self, a: Frame, b: Frame) -> float:
        net = self.distance.net
        return float(net(a.rgb.to(self.device), b.rgb.to(self.device), normalize=True).mean())

    def pair(self, pref: Frame, pdist: Frame, ref: Frame, dist: Frame) -> float:
        key = (_digest(pref.y), _digest(ref.y))
        if key not in self._source:
            if len(self._source) > 4096:
                self._source.clear()
            self._source[key] = self._d(ref, pref)
        return abs(self._d(dist, pdist) - self._source[key])
