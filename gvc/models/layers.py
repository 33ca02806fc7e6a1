"""Building blocks of the HiFiC-style transforms: ChannelNorm, conv blocks, residual blocks.

All tensors are (B, C, H, W) feature maps; nothing here knows about pixel ranges.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelNorm(nn.Module):
    """Normalize over channels only, per pixel, with a learned per-channel scale and offset [HiFiC].

    out = (x - mean_c(x)) / sqrt(var_c(x) + eps) * gamma + beta, variance is the biased (population) one.
    """

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = float(eps)
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.gamma + self.beta


def conv(
    in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding_mode: str = "reflect"
) -> nn.Conv2d:
    """Conv with 'same'-style padding (kernel_size // 2); stride 2 halves even sizes exactly."""
    return nn.Conv2d(
        in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, padding_mode=padding_mode
    )


def deconv(in_ch: int, out_ch: int, kernel_size: int, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed conv that multiplies the spatial size exactly by `stride` (odd kernel_size)."""
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, output_padding=stride - 1
    )


class ConvNormAct(nn.Sequential):
    """conv(k, stride) -> ChannelNorm -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, norm_eps: float = 1e-3):
        super().__init__(
            conv(in_ch, out_ch, kernel_size, stride), ChannelNorm(out_ch, norm_eps), nn.ReLU(inplace=True)
        )


class DeconvNormAct(nn.Sequential):
    """transposed conv(k, stride 2) -> ChannelNorm -> ReLU (doubles H and W)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, norm_eps: float = 1e-3):
        super().__init__(
            deconv(in_ch, out_ch, kernel_size, 2), ChannelNorm(out_ch, norm_eps), nn.ReLU(inplace=True)
        )


class ResidualBlock(nn.Module):
    """x + (conv3x3 -> CN -> ReLU -> conv3x3 -> CN)(x) [HiFiC]."""

    def __init__(self, channels: int, norm_eps: float = 1e-3):
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels, 3),
            ChannelNorm(channels, norm_eps),
            nn.ReLU(inplace=True),
            conv(channels, channels, 3),
            ChannelNorm(channels, norm_eps),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
