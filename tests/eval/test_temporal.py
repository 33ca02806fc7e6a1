"""Temporal metrics on synthetic video whose answer is known: flicker vs the same noise frozen in time, a globally
translated texture reconstructed exactly, and their place in the metric registry."""

import math

import numpy as np
import pytest

from gvc.data.io import yuv420_to_rgb
from gvc.eval.metrics import HIGHER_IS_BETTER, Frame, MetricSuite, TLPMetric, WarpErrorMetric, psnr_planes

H, W, T = 64, 96, 6


def _frame(y: np.ndarray) -> Frame:
    y = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    u = np.full((y.shape[0] // 2, y.shape[1] // 2), 110, np.uint8)
    v = np.full_like(u, 140)
    return Frame(y, u, v, yuv420_to_rgb(y, u, v, "bt709", True, "nearest")[None])


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture with structure at several scales (what DIS can track)."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.zeros((h, w), np.float32)
    for sigma, amp in ((1.0, 25), (3.0, 40), (8.0, 50)):
        out += amp * cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
    return 128 + out / out.std() * 35


def _run(metric, src: list[Frame], dec: list[Frame]) -> list[float]:
    metric.begin(W, H, 30.0)
    for a, b in zip(src, dec):
        metric.add(a, b)
    return metric.end()[metric.columns[0]]


def _mean(values: list[float]) -> float:
    assert math.isnan(values[0]) and not any(math.isnan(v) for v in values[1:])  # frame 0 has no predecessor
    return float(np.mean(values[1:]))


@pytest.fixture(scope="module")
def tlp():
    return TLPMetric()


def test_flicker_scores_worse_than_the_same_noise_frozen_in_time(tlp):
    """A static scene with fresh noise every frame (flicker) against the same noise frozen over time: per frame the
    two are equally distorted (same PSNR), but only the flicker changes from frame to frame."""
    scene = _texture(H, W)
    rng = np.random.default_rng(1)
    src = [_frame(scene) for _ in range(T)]
    frozen_noise = rng.normal(0, 8, (H, W))
    frozen = [_frame(scene + frozen_noise) for _ in range(T)]
    flicker = [_frame(scene + rng.normal(0, 8, (H, W))) for _ in range(T)]
    psnr = [np.mean([psnr_planes(a.y, b.y) for a, b in zip(src, d)]) for d in (frozen, flicker)]
    assert abs(psnr[0] - psnr[1]) < 0.2  # per-frame fidelity cannot tell them apart

    warp = WarpErrorMetric()
    w_frozen, w_flicker = _mean(_run(warp, src, frozen)), _mean(_run(warp, src, flicker))
    assert abs(w_frozen) < 0.5 and w_flicker > 5.0  # noise sigma 8 -> |a - b| of two draws ~ 9 levels
    t_frozen, t_flicker = _mean(_run(tlp, src, frozen)), _mean(_run(tlp, src, flicker))
    assert t_frozen < 1e-6 and t_flicker > 10 * max(t_frozen, 1e-3)


def test_translated_texture_reconstructed_exactly_is_perfect(tlp):
    """A texture moving by (3, 2) px per frame: the source's flow explains the motion (its own warping error is
    small), an exact reconstruction scores 0 on both metrics, and the same motion with flicker does not."""
    big = _texture(H + 3 * T, W + 3 * T, seed=2)
    src = [_frame(big[2 * t : 2 * t + H, 3 * t : 3 * t + W]) for t in range(T)]
    warp = WarpErrorMetric()
    assert _mean(_run(warp, src, src)) == 0.0 and _mean(_run(tlp, src, src)) == 0.0

    from gvc.eval.metrics.temporal import _rgb255, warp_l1

    own = [warp_l1(_rgb255(a), _rgb255(b), warp.flow(a.y, b.y)) for a, b in zip(src, src[1:])]
    still = [float(np.abs(_rgb255(b) - _rgb255(a)).mean()) for a, b in zip(src, src[1:])]
    assert max(own) < 2.0 and min(still) > 5 * max(own)  # the DIS flow really compensates the motion

    rng = np.random.default_rng(3)
    noisy = [_frame(f.y.astype(np.float64) + rng.normal(0, 6, (H, W))) for f in src]
    assert _mean(_run(warp, src, noisy)) > 3.0 and _mean(_run(tlp, src, noisy)) > 1e-3  # exact: 0


def test_temporal_metrics_are_registered_and_summarised_over_frames_with_a_value():
    suite = MetricSuite(["psnr", "warp_error", "tlp"])
    assert not suite.unavailable and not HIGHER_IS_BETTER["warp_error"] and not HIGHER_IS_BETTER["tlp"]
    scene = _texture(H, W)
    rng = np.random.default_rng(4)
    src = [_frame(scene) for _ in range(3)]
    dec = [_frame(scene + rng.normal(0, 8, (H, W))) for _ in range(3)]
    scores = suite.evaluate(zip(src, dec), W, H, 30.0)
    assert math.isnan(scores.per_frame["warp_error"][0]) and len(scores.per_frame["tlp"]) == 3
    assert scores.summary["warp_error"] == pytest.approx(np.mean(scores.per_frame["warp_error"][1:]))
    assert scores.summary["tlp"] > 0 and math.isfinite(scores.summary["psnr_y"])
    one = suite.evaluate(zip(src[:1], dec[:1]), W, H, 30.0)  # one frame: no temporal value, not a NaN mean
    assert "warp_error" not in one.summary and "psnr_y" in one.summary
