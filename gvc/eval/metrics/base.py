"""What every metric shares: the frame pair it reads, the per-clip interface, column directions, weight files."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gvc.errors import MissingWeightsError

# Columns each metric writes and whether higher values are better (used by RD/BD-rate code).
HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr_rgb": True,
    "psnr_y": True,
    "psnr_u": True,
    "psnr_v": True,
    "psnr_yuv": True,
    "mean_err_y": False,  # signed colour shift: 0 is best (see MEAN_ERROR_COLUMNS)
    "mean_err_u": False,
    "mean_err_v": False,
    "hf_ratio": True,  # 1 is the source's detail; above 1 is added texture or noise
    "sharpness": True,
    "sharpness_source": True,
    "ms_ssim": True,
    "lpips": False,
    "st_lpips": False,
    "st_lpips_vgg": False,
    "pim": False,
    "vmaf": True,
    "fid": False,
    "kid": False,
    "warp_error": False,
    "tlp": False,
}
#: how each column is labelled in tables and plots (ST-LPIPS is never called LPIPS)
COLUMN_LABELS: dict[str, str] = {
    "psnr_rgb": "PSNR RGB [dB]",
    "psnr_y": "PSNR Y [dB]",
    "psnr_u": "PSNR U [dB]",
    "psnr_v": "PSNR V [dB]",
    "psnr_yuv": "PSNR YUV 6:1:1 [dB]",
    "mean_err_y": "Y mean error [8-bit levels, decoded - source]",
    "mean_err_u": "U mean error [8-bit levels, decoded - source]",
    "mean_err_v": "V mean error [8-bit levels, decoded - source]",
    "hf_ratio": "high-frequency energy / source's (Y)",
    "sharpness": "sharpness (Laplacian variance of Y)",
    "sharpness_source": "source sharpness (Laplacian variance of Y)",
    "ms_ssim": "MS-SSIM",
    "lpips": "LPIPS (AlexNet)",
    "st_lpips": "ST-LPIPS (AlexNet)",
    "st_lpips_vgg": "ST-LPIPS (VGG)",
    "pim": "PIM",
    "vmaf": "VMAF",
    "fid": "FID",
    "kid": "KID",
    "warp_error": "warping error vs source (source DIS flow) [8-bit levels]",
    "tlp": "tLP (ST-LPIPS AlexNet)",
}
#: signed columns whose best value is 0 (no RD curve or BD-rate is drawn over them)
MEAN_ERROR_COLUMNS = ("mean_err_y", "mean_err_u", "mean_err_v")
PSNR_YUV_WEIGHTING = "(6*Y + U + V) / 8 of per-frame PSNRs (DCVC); CompressAI uses (4*Y + U + V) / 6"


@dataclass
class Frame:
    """One frame in both forms: ``y`` (H, W), ``u``/``v`` (H/2, W/2) uint8 planes and ``rgb`` (1, 3, H, W) [0, 1]."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    rgb: torch.Tensor

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def width(self) -> int:
        return int(self.y.shape[1])


class Metric(ABC):
    """A video metric: ``begin`` a clip, ``add`` frame pairs, ``end`` -> per-frame values per column."""

    name: str = ""
    columns: tuple[str, ...] = ()
    device: torch.device = torch.device("cpu")

    def info(self) -> dict[str, Any]:
        """Facts recorded in results.json (variant, weights, scales...)."""
        return {}

    def begin(self, width: int, height: int, fps: float) -> None:
        self._values: dict[str, list[float]] = {c: [] for c in self.columns}

    @abstractmethod
    def add(self, ref: Frame, dist: Frame) -> None: ...

    def end(self) -> dict[str, list[float]]:
        return self._values


class UnavailableMetric:
    """Stands in for a metric that cannot run here; ``reason`` says what is missing and how to provide it."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    def result(self) -> dict[str, str]:
        return {"unavailable": self.reason}


def default_weights_dir() -> Path:
    """torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``), where torchvision caches weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights(path: str | os.PathLike | None, default_name: str, what: str) -> Path:
    """The weights file at ``path`` or ``default_weights_dir()/default_name``; MissingWeightsError naming it."""
    candidate = Path(path).expanduser() if path else default_weights_dir() / default_name
    if not candidate.is_file():
        raise MissingWeightsError(
            f"{what} weights not found at {candidate}; copy the file there (or set its path in the config)"
        )
    return candidate
