"""Latent-conditioned patch discriminator [HiFiC] (D_I; D_P reuses it with a concatenated latent)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gvc.models.config import derive_config


class ConditionalDiscriminator(nn.Module):
    """forward(x01 (B, in_channels, H, W) in [0,1], latent (B, latent_channels, h, w)) -> logits (B, 1, H/8, W/8).

    Condition: latent -> conv3x3 to cond_channels -> LeakyReLU -> nearest upsample to (H, W) -> concat with the
    image mapped to [-1, 1] here. Body: conv4x4 s2 for widths[:-1], conv4x4 s1 widths[-1] (LeakyReLU each),
    conv4x4 s1 to one logit per patch. Spectral norm on every conv. The caller decides whether `latent` is
    detached.
    """

    def __init__(
        self,
        *,
        latent_channels: int,
        cond_channels: int,
        widths: Sequence[int],
        in_channels: int,
        negative_slope: float,
    ):
        super().__init__()
        widths = [int(w) for w in widths]
        self.config = derive_config(ConditionalDiscriminator.__init__, locals())
        self.negative_slope = negative_slope
        self.cond = spectral_norm(nn.Conv2d(latent_channels, cond_channels, 3, padding=1))
        layers: list[nn.Module] = []
        c = in_channels + cond_channels
        for i, w in enumerate(widths):
            if i < len(widths) - 1:
                layers.append(spectral_norm(nn.Conv2d(c, w, 4, stride=2, padding=1)))
            else:
                layers += [nn.ZeroPad2d((1, 2, 1, 2)), spectral_norm(nn.Conv2d(c, w, 4, stride=1))]
            layers.append(nn.LeakyReLU(negative_slope))
            c = w
        layers += [nn.ZeroPad2d((1, 2, 1, 2)), spectral_norm(nn.Conv2d(c, 1, 4, stride=1))]  # 'same' for k=4
        self.body = nn.Sequential(*layers)

    def forward(self, x01: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        cond = F.leaky_relu(self.cond(latent), self.negative_slope)
        cond = F.interpolate(cond, size=x01.shape[-2:], mode="nearest")
        return self.body(torch.cat([x01 * 2.0 - 1.0, cond], dim=1))
