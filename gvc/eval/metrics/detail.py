"""Detail metrics: how much fine texture a decoded frame keeps (what MSE-trained codecs blur away and a GAN
synthesises), on the luma plane.

- ``hf_ratio`` (full reference): spectral energy of the decoded Y above ``cutoff`` cycles per pixel (radial,
  plane mean removed) over the source's. 1 = as much high-frequency energy as the source, < 1 blurred, > 1
  added texture or noise. Not a fidelity measure: invented detail counts like true detail.
- ``sharpness`` (no reference): the variance of the 3x3 Laplacian of the decoded Y (8-bit levels squared), the
  classic focus measure; compare it with the source's ``sharpness_source`` column on the same frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gvc.eval.metrics.base import Frame, Metric

HF_CUTOFF = 0.25  # cycles per pixel; 0.5 is Nyquist [ours]


def hf_energy(plane: np.ndarray, cutoff: float = HF_CUTOFF) -> float:
    """Spectral energy of a plane (H, W) above ``cutoff`` cycles/pixel (radial), mean removed (arbitrary unit)."""
    p = plane.astype(np.float64)
    f = np.fft.fft2(p - p.mean())
    fy = np.fft.fftfreq(p.shape[0])[:, None]
    fx = np.fft.fftfreq(p.shape[1])[None, :]
    mask = np.sqrt(fx**2 + fy**2) > cutoff
    return float((np.abs(f[mask]) ** 2).sum())


def laplacian_variance(plane: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a plane (H, W) over its interior (8-bit levels squared)."""
    p = plane.astype(np.float64)
    lap = p[1:-1, :-2] + p[1:-1, 2:] + p[:-2, 1:-1] + p[2:, 1:-1] - 4.0 * p[1:-1, 1:-1]
    return float(lap.var())


class DetailMetric(Metric):
    """hf_ratio (decoded over source high-frequency energy of Y), sharpness (Laplacian variance of the decoded
    Y) and sharpness_source (the same of the source Y), per frame."""

    name = "detail"
    columns = ("hf_ratio", "sharpness", "sharpness_source")

    def __init__(self, cutoff: float = HF_CUTOFF):
        self.cutoff = float(cutoff)

    def info(self) -> dict[str, Any]:
        return {"plane": "Y", "hf_cutoff_cycles_per_pixel": self.cutoff, "sharpness": "Laplacian variance"}

    def add(self, ref: Frame, dist: Frame) -> None:
        src = hf_energy(ref.y, self.cutoff)
        self._values["hf_ratio"].append(hf_energy(dist.y, self.cutoff) / src if src > 0 else float("nan"))
        self._values["sharpness"].append(laplacian_variance(dist.y))
        self._values["sharpness_source"].append(laplacian_variance(ref.y))
