"""Rate-conditioned latents (docs/METHOD.md section 1.8): learned per-channel gains, one vector per quality level.

A variable-rate bottleneck codes y' = y * g(q) (quantized, entropy-coded, its hyperprior computed from y') and
hands synthesis y_hat = y_hat' * g_inv(q): a larger gain makes the quantization bins finer relative to the latent,
so more bits and less distortion [Cui et al., CVPR 2021, "asymmetric gained" units; DCVC's q vectors]. Gains and
inverse gains are separate parameters (not reciprocals): the decoder may rescale differently from the encoder.

q is a quality level in [0, levels - 1]; integers are the trained levels (level 0 the lowest rate), a fractional q
interpolates the two neighbouring levels' gains in the log domain (log g(q) = (1 - t) log g(floor q) + t log
g(floor q + 1), t = q - floor q), so the rate moves continuously between the trained points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def as_levels(q, batch: int, device: torch.device) -> torch.Tensor:
    """q (a number, or a (B,) / (1,) tensor or sequence) -> float32 (batch,) tensor on `device`."""
    t = torch.as_tensor(q, dtype=torch.float32, device=device).reshape(-1)
    if t.numel() == 1:
        return t.expand(batch)
    if t.numel() != batch:
        raise ValueError(f"q has {t.numel()} levels for a batch of {batch}")
    return t


class RateGains(nn.Module):
    """Per-level, per-channel gains g (before quantization) and inverse gains g_inv (after), log-parametrized.

    levels: Q >= 2 trained quality levels; channels: C of the latent; init: (first, last) initial gain of level 0
    and level Q - 1, level k starting at exp(linspace(log first, log last, Q))[k] for every channel, its inverse
    gain at 1 / that (the y latent's gains rise with the level; the hyper-latent z's may fall, see
    HyperpriorBottleneck).
    Every level's vectors are its own parameters: a level's gains move only with its own items' loss. (Gains
    built as level 0's plus positive steps, so ordered by construction, were measured to fail: the lowest level's
    rate pressure pulled the shared base, and with it every level, down, and the top levels could not spend the
    bits their targets asked for; BENCHMARKS.md, "One model for every rate (bench_variable_rate)".) That the rate
    rises with q is what training makes of the per-level rate weights, checked where it is measured.

    forward(q (B,) float in [0, Q-1]) -> (g, g_inv), each (B, C, 1, 1).
    """

    def __init__(self, levels: int, channels: int, init: Sequence[float]):
        super().__init__()
        levels, channels = int(levels), int(channels)
        lo, hi = (float(v) for v in init)
        if levels < 2:
            raise ValueError(f"a variable-rate latent needs at least 2 levels, got {levels}")
        if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"initial gains must be positive and finite, got {init}")
        start = torch.linspace(math.log(lo), math.log(hi), levels).unsqueeze(1).expand(levels, channels)
        self.log_gain = nn.Parameter(start.clone())
        self.log_inverse_gain = nn.Parameter(-start.clone())
        self.levels = levels

    def log_gains(self) -> torch.Tensor:
        """(Q, C) log g."""
        return self.log_gain

    def check(self, q: torch.Tensor) -> None:
        """ValueError unless every q is finite and in [0, levels - 1]."""
        bad = ~torch.isfinite(q) | (q < 0) | (q > self.levels - 1)
        if bool(bad.any()):
            raise ValueError(f"quality level q must be in [0, {self.levels - 1}], got {q[bad][0].item():g}")

    def _interpolate(self, table: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        lo = q.floor().clamp(0, self.levels - 1)
        hi = (lo + 1).clamp(max=self.levels - 1)
        t = (q - lo).unsqueeze(1)
        log_g = (1 - t) * table[lo.long()] + t * table[hi.long()]
        return log_g.exp()[:, :, None, None]

    def forward(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check(q)
        return self._interpolate(self.log_gain, q), self._interpolate(self.log_inverse_gain, q)


__all__ = ["RateGains", "as_levels"]
