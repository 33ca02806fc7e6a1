"""Signal-fidelity metrics: PSNR (RGB and Y/U/V planes), the per-plane mean error (colour shift) and MS-SSIM."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gvc.errors import ConfigError
from gvc.eval.metrics.base import PSNR_YUV_WEIGHTING, Frame, Metric

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, as torchmetrics / pytorch_msssim


def psnr(
    ref: torch.Tensor, dist: torch.Tensor, data_range: float = 1.0, cap_db: float | None = None
) -> torch.Tensor:
    """Per-image PSNR in dB of ``(N, C, H, W)`` tensors in [0, data_range] -> ``(N,)``.

    Identical images have MSE 0: the PSNR is ``inf``, or ``cap_db`` when given (documented cap; the default
    configuration caps at 100 dB so that means over frames stay finite).
    """
    ref = ref.double()
    dist = dist.double()
    mse = (ref - dist).pow(2).flatten(1).mean(dim=1)
    value = 10.0 * torch.log10(data_range**2 / mse)
    if cap_db is not None:
        value = torch.clamp(value, max=cap_db)
    return value


def psnr_planes(ref: np.ndarray, dist: np.ndarray, cap_db: float | None = None, peak: float = 255.0) -> float:
    """PSNR in dB of one 8-bit plane (any shape) against the reference plane; ``cap_db`` as in :func:`psnr`."""
    mse = float(np.mean((ref.astype(np.float64) - dist.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf if cap_db is None else float(cap_db)
    value = 10.0 * math.log10(peak**2 / mse)
    return value if cap_db is None else min(value, float(cap_db))


def ms_ssim_scales(height: int, width: int, kernel_size: int = 11, max_scales: int = 5) -> int:
    """Largest number of MS-SSIM scales (<= ``max_scales``) whose coarsest level still fits the window.

    Scale s works on the image downsampled by 2^(s-1); torchmetrics and pytorch_msssim require
    ``min(H, W) > (kernel_size - 1) * 2^(scales - 1)``. 176x144 (carphone) gets 4 scales with an 11x11 window.
    """
    scales = max_scales
    while scales > 1 and min(height, width) <= (kernel_size - 1) * 2 ** (scales - 1):
        scales -= 1
    if min(height, width) < kernel_size:
        raise ConfigError(
            f"MS-SSIM needs frames of at least {kernel_size}x{kernel_size}, got {width}x{height}"
        )
    return scales


def ms_ssim(
    ref: torch.Tensor,
    dist: torch.Tensor,
    kernel_size: int = 11,
    sigma: float = 1.5,
    max_scales: int = 5,
    betas: Sequence[float] = MS_SSIM_BETAS,
) -> tuple[torch.Tensor, int]:
    """Per-image MS-SSIM of ``(N, 3, H, W)`` RGB in [0, 1] -> (``(N,)``, number of scales used).

    Small frames: instead of padding (which would measure the padding), the number of scales is reduced to the
    largest that fits (:func:`ms_ssim_scales`) and the first ``scales`` exponents are renormalised to sum to 1.
    The scale count is recorded in results; 5 (the standard) for frames larger than 160 px on the short side.
    """
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    scales = ms_ssim_scales(ref.shape[-2], ref.shape[-1], kernel_size, max_scales)
    used = torch.tensor(betas[:scales], dtype=torch.float64)
    used = tuple((used / used.sum()).tolist())
    value = multiscale_structural_similarity_index_measure(
        dist.float(),
        ref.float(),
        gaussian_kernel=True,
        sigma=sigma,
        kernel_size=kernel_size,
        reduction="none",
        data_range=1.0,
        betas=used,
        normalize="relu",
    )
    return value.reshape(-1), scales


class PSNRMetric(Metric):
    """PSNR on RGB (from the float tensors) and on the 8-bit Y, U, V planes; psnr_yuv = (6Y + U + V) / 8."""

    name = "psnr"
    columns = ("psnr_rgb", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv")

    def __init__(self, cap_db: float | None = None, yuv_weights: Sequence[float] = (6.0, 1.0, 1.0)):
        self.cap_db = cap_db
        self.yuv_weights = tuple(float(w) for w in yuv_weights)

    def info(self) -> dict[str, Any]:
        return {"cap_db": self.cap_db, "yuv_weights": list(self.yuv_weights), "weighting": PSNR_YUV_WEIGHTING}

    def add(self, ref: Frame, dist: Frame) -> None:
        values = {
            "psnr_rgb": float(psnr(ref.rgb, dist.rgb, cap_db=self.cap_db)[0]),
            "psnr_y": psnr_planes(ref.y, dist.y, self.cap_db),
            "psnr_u": psnr_planes(ref.u, dist.u, self.cap_db),
            "psnr_v": psnr_planes(ref.v, dist.v, self.cap_db),
        }
        wy, wu, wv = self.yuv_weights
        values["psnr_yuv"] = (wy * values["psnr_y"] + wu * values["psnr_u"] + wv * values["psnr_v"]) / (
            wy + wu + wv
        )
        for key, value in values.items():
            self._values[key].append(value)


def plane_mean_error(ref: np.ndarray, dist: np.ndarray) -> float:
    """Mean of (decoded - source) over one 8-bit plane, in 8-bit levels (signed: + brighter / more chroma)."""
    return float(np.mean(dist.astype(np.float64)) - np.mean(ref.astype(np.float64)))


class PlaneMeanMetric(Metric):
    """The colour shift of a decoded frame: mean(decoded) - mean(source) per Y, U, V plane, in 8-bit levels.

    0 is a colour-true codec; a PSNR can be good while a whole plane sits a few levels off (a darkened face, a
    green cast), which this column shows and PSNR hides. Per-frame values; the clip value is their mean.
    """

    name = "plane_mean"
    columns = ("mean_err_y", "mean_err_u", "mean_err_v")

    def info(self) -> dict[str, Any]:
        return {"unit": "8-bit levels, decoded minus source", "planes": "Y, U, V (4:2:0)"}

    def add(self, ref: Frame, dist: Frame) -> None:
        for col, a, b in zip(self.columns, (ref.y, ref.u, ref.v), (dist.y, dist.u, dist.v)):
            self._values[col].append(plane_mean_error(a, b))


class MSSSIMMetric(Metric):
    """MS-SSIM on RGB [0, 1]; on frames too small for 5 scales fewer scales are used (recorded in info)."""

    name = "ms_ssim"
    columns = ("ms_ssim",)

    def __init__(self, kernel_size: int = 11, sigma: float = 1.5, max_scales: int = 5):
        self.kernel_size = kernel_size
        self.sigma = sigma
        self.max_scales = max_scales
        self.scales_used: int | None = None

    def info(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "sigma": self.sigma, "scales": self.scales_used}

    def add(self, ref: Frame, dist: Frame) -> None:
        value, self.scales_used = ms_ssim(ref.rgb, dist.rgb, self.kernel_size, self.sigma, self.max_scales)
        self._values["ms_ssim"].append(float(value[0]))
