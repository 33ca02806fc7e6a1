"""Quantizers for training and coding (one code path; docs/METHOD.md section 2.5, section 6).

Modes of `quantize(x, mode, means=None, **params)`:
- "noise": x + U(-0.5, 0.5) (additive uniform noise; `means` is irrelevant since the noise is shift invariant).
- "ste": round(x - means) + means in the forward pass, identity gradient (straight-through).
- "round": round(x - means) + means, no gradient (exactly what the entropy coder transmits).
- "softround_kumaraswamy": C3 quantizer r_T(s_T(x - means) + n) + means with soft-round temperature
  `temperature` and Kumaraswamy noise of shape `kumaraswamy_a` (a = 1 is uniform noise).
"""

from __future__ import annotations

import math

import torch

MODES = ("noise", "ste", "round", "softround_kumaraswamy")


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


def soft_round(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """s_T(x) = m + tanh((x - m) / T) / (2 tanh(1 / (2T))), m = floor(x) + 0.5 (docs/METHOD.md section 6)."""
    m = torch.floor(x) + 0.5
    return m + torch.tanh((x - m) / temperature) / (2.0 * math.tanh(1.0 / (2.0 * temperature)))


def soft_round_inverse(y: torch.Tensor, temperature: float, eps: float = 1e-6) -> torch.Tensor:
    """s_T^{-1}(y) = m + T * atanh(2 tanh(1/(2T)) (y - m)), m = floor(y) + 0.5; atanh argument clamped to +-(1-eps)."""
    m = torch.floor(y) + 0.5
    arg = (2.0 * math.tanh(1.0 / (2.0 * temperature)) * (y - m)).clamp(-1.0 + eps, 1.0 - eps)
    return m + temperature * torch.atanh(arg)


def soft_round_conditional_mean(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """r_T(z) = s_T^{-1}(z - 0.5) + 0.5: E[x | s_T(x) + n = z] for uniform-ish noise (C3)."""
    return soft_round_inverse(z - 0.5, temperature) + 0.5


def kumaraswamy_noise(like: torch.Tensor, a: float) -> torch.Tensor:
    """Noise in (-0.5, 0.5) with Kumaraswamy(a, b) shape, b = (2^a (a-1) + 1) / a; a = 1 gives U(-0.5, 0.5)."""
    b = (2.0**a * (a - 1.0) + 1.0) / a
    u = torch.rand_like(like).clamp(1e-7, 1.0 - 1e-7)
    return (1.0 - (1.0 - u) ** (1.0 / b)) ** (1.0 / a) - 0.5


def quantize(
    x: torch.Tensor,
    mode: str,
    means: torch.Tensor | None = None,
    temperature: float = 0.3,
    kumaraswamy_a: float = 2.0,
) -> torch.Tensor:
    """Quantize `x` (any shape) according to `mode` (see module docstring); `means` broadcasts against x.

    `temperature` and `kumaraswamy_a` are used only by "softround_kumaraswamy" (C3 anneals T 0.3 -> 0.1, a 2 -> 1).
    """
    if mode == "noise":
        return x + torch.empty_like(x).uniform_(-0.5, 0.5)
    centered = x if means is None else x - means
    if mode == "ste":
        q = ste_round(centered)
    elif mode == "round":
        q = torch.round(centered).detach()
    elif mode == "softround_kumaraswamy":
        if temperature <= 0:
            raise ValueError(f"softround temperature must be > 0, got {temperature}")
        if kumaraswamy_a < 1:
            raise ValueError(f"kumaraswamy_a must be >= 1, got {kumaraswamy_a}")
        q = soft_round_conditional_mean(
            soft_round(centered, temperature) + kumaraswamy_noise(centered, kumaraswamy_a), temperature
        )
    else:
        raise ValueError(f"unknown quantization mode {mode!r}; expected one of {MODES}")
    return q if means is None else q + means
