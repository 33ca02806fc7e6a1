"""Building blocks of the transforms: normalisations, conv blocks, residual blocks.

All tensors are (B, C, H, W) feature maps; nothing here knows about pixel ranges.

`norm` selects the normalisation of every block (a model-config value):
- "channel": ChannelNorm followed by ReLU [HiFiC] (the paper configuration);
- "gdn": compressai's GDN in analysis blocks and inverse GDN in synthesis blocks, no ReLU (Balle et al.; what
  compressai's hyperprior models use);
- "none": ReLU only.
"""

from __future__ import annotations

import torch
from compressai.layers import GDN
from torch import nn

NORMS = ("channel", "gdn", "none")


def check_norm(norm: str) -> str:
    """`norm` if it is one of NORMS, else ValueError."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


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


def norm_act(norm: str, channels: int, eps: float = 1e-3, inverse: bool = False) -> list[nn.Module]:
    """The layers after a conv for `norm` (see the module docstring): [ChannelNorm, ReLU], [GDN] (inverse GDN
    with inverse=True, for synthesis) or [ReLU]."""
    check_norm(norm)
    if norm == "channel":
        return [ChannelNorm(channels, eps), nn.ReLU(inplace=True)]
    if norm == "gdn":
        return [GDN(channels, inverse=inverse)]
    return [nn.ReLU(inplace=True)]


def plain_norm(norm: str, channels: int, eps: float = 1e-3) -> nn.Module:
    """A normalisation without activation: ChannelNorm for "channel", identity otherwise (a generator's head and
    residual blocks; GDN there would only add cost)."""
    return ChannelNorm(channels, eps) if check_norm(norm) == "channel" else nn.Identity()


class ConvNormAct(nn.Sequential):
    """conv(k, stride) -> normalisation and activation of `norm` (ChannelNorm + ReLU by default)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int = 1,
        norm_eps: float = 1e-3,
        norm: str = "channel",
    ):
        super().__init__(conv(in_ch, out_ch, kernel_size, stride), *norm_act(norm, out_ch, norm_eps))


class DeconvNormAct(nn.Sequential):
    """transposed conv(k, stride 2) -> normalisation and activation of `norm` (inverse GDN for "gdn");
    doubles H and W."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int = 3, norm_eps: float = 1e-3, norm: str = "channel"
    ):
        super().__init__(
            deconv(in_ch, out_ch, kernel_size, 2), *norm_act(norm, out_ch, norm_eps, inverse=True)
        )


class ResidualBlock(nn.Module):
    """x + (conv3x3 -> CN -> ReLU -> conv3x3 -> CN)(x) [HiFiC]; without ChannelNorm for other `norm`s."""

    def __init__(self, channels: int, norm_eps: float = 1e-3, norm: str = "channel"):
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels, 3),
            plain_norm(norm, channels, norm_eps),
            nn.ReLU(inplace=True),
            conv(channels, channels, 3),
            plain_norm(norm, channels, norm_eps),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
