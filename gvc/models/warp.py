"""Motion compensation: bicubic backward warping and scale-space blur (Agustsson et al. 2020, docs/METHOD.md section 3.2).

Flow convention (shared with `gvc.models.flow` and `gvc.data.datasets`): backward flow in pixels, (B, 2, H, W),
channel 0 = x (columns, right positive), channel 1 = y (rows, down positive), such that
``backward_warp(ref, flow)(p) = ref(p + flow(p))``.

Precision (docs/METHOD.md section 2.8): warping and blurring always run in float32 with autocast disabled, whatever the caller's
autocast or input dtype: a bf16 pixel coordinate near 200 px has a spacing of 1 px, so a sub-pixel flow would
be lost. Outputs are float32.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F


def float32_region(t: torch.Tensor):
    """Context that disables autocast on t's device type: everything inside computes in the input dtypes."""
    if t.device.type in ("cuda", "cpu", "xpu", "mps"):
        return torch.autocast(device_type=t.device.type, enabled=False)
    return contextlib.nullcontext()


def pixel_grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling positions p + flow(p) normalized for grid_sample(align_corners=True): (B, H, W, 2) in [-1, 1]
    for in-frame positions (pixel centre 0 -> -1, pixel centre W-1 -> +1)."""
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W), got {tuple(flow.shape)}")
    b, _, h, w = flow.shape
    if h < 2 or w < 2:
        raise ValueError(f"warping needs H, W >= 2, got {h}x{w}")
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    gx = (xs + flow[:, 0]) * (2.0 / (w - 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / (h - 1)) - 1.0
    return torch.stack([gx, gy], dim=-1)


#: cubic convolution coefficient (Keys); -0.75 as in PyTorch's and OpenCV's bicubic
CUBIC_A = -0.75


def _cubic_weights(t: torch.Tensor, a: float = CUBIC_A) -> tuple[torch.Tensor, ...]:
    """Weights of the taps at offsets -1, 0, 1, 2 for fractional position t in [0, 1); t = 0 gives (0, 1, 0, 0)
    exactly."""

    def near(d):  # |d| <= 1
        return ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a

    return far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)


def backward_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """out(p) = x(p + flow(p)): x (B, C, H, W) any range, flow (B, 2, H, W) pixels -> (B, C, H, W).

    Bicubic (Keys cubic convolution, a = -0.75: the same interpolant as F.grid_sample(mode="bicubic",
    padding_mode="border", align_corners=True)) with border padding (each of the 4x4 taps is clamped into the
    frame). Computed directly in pixel units, so zero flow (any integer flow) reproduces x exactly; bicubic may
    overshoot the input range slightly. Differentiable in x and in flow.
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"x must be (B, C, H, W) and flow (B, 2, H, W), got {tuple(x.shape)}, {tuple(flow.shape)}"
        )
    if x.shape[0] != flow.shape[0] or x.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or size")
    with float32_region(x):
        return _bicubic_warp(x.float(), flow.float())


def _bicubic_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    px = xs + flow[:, 0]  # (B, H, W) source column
    py = ys + flow[:, 1]
    x0, y0 = torch.floor(px), torch.floor(py)
    wx = _cubic_weights(px - x0)
    wy = _cubic_weights(py - y0)
    x0, y0 = x0.long(), y0.long()
    cols = [(x0 + k).clamp(0, w - 1) for k in (-1, 0, 1, 2)]
    rows = [(y0 + k).clamp(0, h - 1) * w for k in (-1, 0, 1, 2)]
    src = x.reshape(b, c, h * w)
    out = None
    for row, wr in zip(rows, wy):
        acc = None
        for col, wc in zip(cols, wx):
            idx = (row + col).view(b, 1, h * w).expand(b, c, h * w)
            term = torch.gather(src, 2, idx).view(b, c, h, w) * wc.unsqueeze(1)
            acc = term if acc is None else acc + term
        term = acc * wr.unsqueeze(1)
        out = term if out is None else out + term
    return out


def gaussian_kernel1d(sigma: float, truncate: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalized 1D Gaussian of std `sigma` pixels with radius ceil(truncate * sigma) (at least 1)."""
    radius = max(1, math.ceil(truncate * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Separable Gaussian blur of x (B, C, H, W) with std `sigma` pixels, replicate padding; sigma <= 0: x."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, truncate, x.dtype, x.device)
    r = (k.numel() - 1) // 2
    b, c, h, w = x.shape
    y = x.reshape(b * c, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


def scale_space_sigmas(num_levels: int, sigma0: float) -> list[float]:
    """Blur std of each scale-space level: [0, sigma0, 2 sigma0, 4 sigma0, ...] (num_levels entries)."""
    if num_levels < 1:
        raise ValueError(f"num_levels must be >= 1, got {num_levels}")
    if num_levels > 1 and sigma0 <= 0:
        raise ValueError(f"sigma0 must be > 0, got {sigma0}")
    return [0.0] + [float(sigma0) * 2.0**k for k in range(num_levels - 1)]


def scale_space_blur(
    x: torch.Tensor, sigma: torch.Tensor, num_levels: int = 5, sigma0: float = 1.0, truncate: float = 3.0
) -> torch.Tensor:
    """Blur x (B, C, H, W) per pixel by sigma (B, 1, H, W) pixels (>= 0) through a Gaussian scale-space volume.

    The volume has `num_levels` levels: level 0 is x itself, level k >= 1 is x blurred with sigma0 * 2^(k-1)
    (`scale_space_sigmas`). Each output pixel linearly interpolates, along the scale axis, the two levels whose
    blur brackets its sigma (the scale part of the trilinear lookup of scale-space flow; the spatial part is
    the warp done before). sigma is clamped to [0, largest level]. sigma == 0 gives x exactly; the result is
    differentiable in x and in sigma (except at the level knots and the clamp).
    """
    if (
        sigma.dim() != 4
        or sigma.shape[1] != 1
        or sigma.shape[0] != x.shape[0]
        or sigma.shape[-2:] != x.shape[-2:]
    ):
        raise ValueError(f"sigma must be (B, 1, H, W) matching x {tuple(x.shape)}, got {tuple(sigma.shape)}")
    knots = scale_space_sigmas(num_levels, sigma0)
    if num_levels == 1:
        return x.float()
    with float32_region(x):
        return _scale_space_blur(x.float(), sigma.float(), knots, truncate)


def _scale_space_blur(
    x: torch.Tensor, sigma: torch.Tensor, knots: list[float], truncate: float
) -> torch.Tensor:
    num_levels = len(knots)
    s = sigma.clamp(0.0, knots[-1])
    out = None
    for k, sk in enumerate(knots):
        w = torch.zeros_like(s)
        if k > 0:  # rising ramp on [knots[k-1], knots[k]]
            lo = knots[k - 1]
            w = torch.where((s > lo) & (s <= sk), (s - lo) / (sk - lo), w)
        if k < num_levels - 1:  # falling ramp on [knots[k], knots[k+1]]
            hi = knots[k + 1]
            w = torch.where((s >= sk) & (s < hi), (hi - s) / (hi - sk), w)
        elif k == num_levels - 1:
            w = torch.where(s >= sk, torch.ones_like(s), w)
        term = w * (x if k == 0 else gaussian_blur(x, sk, truncate))
        out = term if out is None else out + term
    return out


__all__ = [
    "backward_warp",
    "float32_region",
    "pixel_grid",
    "CUBIC_A",
    "gaussian_blur",
    "gaussian_kernel1d",
    "scale_space_blur",
    "scale_space_sigmas",
]
