"""YUV 4:2:0 <-> RGB conversion (BT.601 / BT.709, full or limited range).

Conventions: the default is BT.709 full range (which convention a file uses is decided in
:mod:`gvc.data.io.colour`: what the file states, the default only where it states nothing). Chroma is
upsampled to 4:4:4 by nearest-neighbour 2x2 replication (``chroma_upsample="nearest"``, DCVC's convention, which 2x2 averaging inverts
exactly) or bilinearly (``"bilinear"``, centre-sited); RGB -> 4:2:0 averages each 2x2 chroma block.

Full range: Y = 255 * Y', Cb/Cr = 128 + 255 * Pb/Pr. Limited range: Y = 16 + 219 * Y', Cb/Cr = 128 + 224 * Pb/Pr.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gvc.errors import VideoFormatError

#: (Kr, Kb) luma coefficients of each supported matrix.
MATRICES: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
CHROMA_UPSAMPLING = ("nearest", "bilinear")


def luma_coefficients(matrix: str) -> tuple[float, float, float]:
    """(Kr, Kg, Kb) of a matrix name ("bt601", "BT.709", ...): Y' = Kr R' + Kg G' + Kb B'."""
    key = matrix.lower().replace(".", "").replace("-", "").replace("_", "")
    if key not in MATRICES:
        raise VideoFormatError(f"unknown colour matrix {matrix!r}: use one of {sorted(MATRICES)}")
    kr, kb = MATRICES[key]
    return kr, 1.0 - kr - kb, kb


def _range(full_range: bool) -> tuple[float, float, float]:
    """(luma offset, luma scale, chroma scale) on the 8-bit code scale."""
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 224.0)


def _as_float_tensor(x) -> torch.Tensor:
    """uint8/float numpy array or tensor -> float32 tensor (a new tensor: read-only arrays are never aliased)."""
    if isinstance(x, np.ndarray):
        return torch.tensor(x, dtype=torch.float32)
    return x.to(torch.float32) if not x.is_floating_point() else x


def upsample_chroma(c: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """(..., h, w) float -> (..., 2h, 2w) by 2x2 replication ("nearest") or centre-sited bilinear."""
    if mode not in CHROMA_UPSAMPLING:
        raise VideoFormatError(f"unknown chroma upsampling {mode!r}: use one of {CHROMA_UPSAMPLING}")
    if mode == "nearest":
        return c.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    lead = c.shape[:-2]
    x = c.reshape(-1, 1, *c.shape[-2:])
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return x.reshape(*lead, *x.shape[-2:])


def yuv420_to_rgb(
    y, u, v, matrix: str = "bt709", full_range: bool = True, chroma_upsample: str = "nearest"
) -> torch.Tensor:
    """uint8 (or 8-bit-scaled float) planes Y (..., H, W), U, V (..., H/2, W/2) -> RGB float (..., 3, H, W) in [0, 1].

    Accepts numpy arrays or tensors; the result is clamped to [0, 1].
    """
    kr, kg, kb = luma_coefficients(matrix)
    off, ys, cs = _range(full_range)
    yf = (_as_float_tensor(y) - off) / ys
    uf = upsample_chroma((_as_float_tensor(u) - 128.0) / cs, chroma_upsample)
    vf = upsample_chroma((_as_float_tensor(v) - 128.0) / cs, chroma_upsample)
    if uf.shape != yf.shape or vf.shape != yf.shape:
        raise VideoFormatError(f"plane sizes do not match 4:2:0: Y {tuple(yf.shape)}, U/V {tuple(u.shape)}")
    r = yf + 2.0 * (1.0 - kr) * vf
    b = yf + 2.0 * (1.0 - kb) * uf
    g = (yf - kr * r - kb * b) / kg
    return torch.stack([r, g, b], dim=-3).clamp_(0.0, 1.0)


def rgb_to_yuv444(rgb: torch.Tensor, matrix: str = "bt709", full_range: bool = True) -> torch.Tensor:
    """RGB float (..., 3, H, W) in [0, 1] -> float YUV (..., 3, H, W) on the 8-bit code scale (not rounded)."""
    kr, kg, kb = luma_coefficients(matrix)
    off, ys, cs = _range(full_range)
    rgb = _as_float_tensor(rgb)
    r, g, b = rgb.unbind(dim=-3)
    yl = kr * r + kg * g + kb * b
    pb = (b - yl) / (2.0 * (1.0 - kb))
    pr = (r - yl) / (2.0 * (1.0 - kr))
    return torch.stack([off + ys * yl, 128.0 + cs * pb, 128.0 + cs * pr], dim=-3)


def rgb_to_yuv420(
    rgb, matrix: str = "bt709", full_range: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB float (..., 3, H, W) in [0, 1] -> uint8 tensors Y (..., H, W), U, V (..., H/2, W/2).

    Chroma is the mean of each 2x2 block; values are rounded and clipped to [0, 255]. H and W must be even.
    """
    rgb = _as_float_tensor(rgb)
    h, w = rgb.shape[-2:]
    if h % 2 or w % 2:
        raise VideoFormatError(
            f"RGB frame {w}x{h} has an odd size: 4:2:0 needs even width and height (crop or pad)"
        )
    yuv = rgb_to_yuv444(rgb, matrix, full_range)
    lead = yuv.shape[:-3]
    c = yuv[..., 1:, :, :].reshape(-1, 2, h, w)
    c = F.avg_pool2d(c, 2).reshape(*lead, 2, h // 2, w // 2)

    def q(t: torch.Tensor) -> torch.Tensor:
        return t.round().clamp_(0, 255).to(torch.uint8)

    return q(yuv[..., 0, :, :]), q(c[..., 0, :, :]), q(c[..., 1, :, :])
