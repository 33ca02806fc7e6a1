"""Rate controllers for the rate weight lambda_R (SPEC section 1); pure Python/torch, checkpointable.

lambda_R MULTIPLIES the rate term (loss = C * (lambda_R * bpp + C_D * D) + C_P * P, HiFiC's lambda): a larger
lambda_R means fewer bits. Under DDP the caller all-reduces (averages) the measured bpp before `update`, or passes
`reduce_fn` to `update_from_tensor`, so every rank computes the same lambda_R.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def _measured(bpp: float | torch.Tensor, reduce_fn: Callable[[torch.Tensor], torch.Tensor] | None) -> float:
    t = bpp.detach().float().mean() if isinstance(bpp, torch.Tensor) else torch.tensor(float(bpp))
    if reduce_fn is not None:
        t = reduce_fn(t)
    value = float(t)
    if not math.isfinite(value):
        raise ValueError(f"measured bpp is not finite: {value}")
    return value


class _EMAController:
    """Shared part of the controllers: an EMA of the measured bpp (started at the first measurement), lambda_R,
    and their checkpoint state. Subclasses implement `_next_lambda()` from `self.bpp_ema`."""

    lambda_r: float
    ema_decay: float
    bpp_ema: float | None

    def _next_lambda(self) -> float:
        raise NotImplementedError

    def update(self, measured_bpp: float) -> float:
        """Feed one (already all-reduced) batch bpp; returns the new lambda_R."""
        measured_bpp = _measured(measured_bpp, None)
        d = self.ema_decay
        self.bpp_ema = measured_bpp if self.bpp_ema is None else d * self.bpp_ema + (1 - d) * measured_bpp
        self.lambda_r = self._next_lambda()
        return self.lambda_r

    def update_from_tensor(
        self, bpp: torch.Tensor | float, reduce_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> float:
        """Like update, from a bpp tensor (its mean is taken); reduce_fn (e.g. an all-reduce mean) runs first."""
        return self.update(_measured(bpp, reduce_fn))

    def state_dict(self) -> dict:
        return {"lambda_r": self.lambda_r, "bpp_ema": self.bpp_ema}

    def load_state_dict(self, state: dict) -> None:
        self.lambda_r = float(state["lambda_r"])
        self.bpp_ema = None if state["bpp_ema"] is None else float(state["bpp_ema"])


class ProportionalRateController(_EMAController):
    """log lambda_R += k_p * e, e = (bpp_ema - target_bpp) / target_bpp, lambda_R clamped to [lambda_min, lambda_max].

    bpp_ema is an exponential moving average (decay `ema_decay`) of the measured batch bpp, started at the first
    measurement. `max_relative_error` (None: off) clips e to [-max, max], so the far-off bpp of a fresh model
    (often several times the target) cannot drive lambda_R up by orders of magnitude before the networks react.
    Form [ours]; the paper only says a proportional controller is used.
    """

    def __init__(
        self,
        target_bpp: float,
        lambda_init: float,
        k_p: float,
        ema_decay: float,
        lambda_min: float,
        lambda_max: float,
        max_relative_error: float | None = None,
    ):
        if max_relative_error is not None and max_relative_error <= 0:
            raise ValueError(f"max_relative_error must be positive or None, got {max_relative_error}")
        if target_bpp <= 0 or not 0 < lambda_min <= lambda_init <= lambda_max:
            raise ValueError(
                f"need target_bpp > 0 and 0 < lambda_min <= lambda_init <= lambda_max, got {target_bpp}, "
                f"{lambda_min}, {lambda_init}, {lambda_max}"
            )
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.target_bpp = float(target_bpp)
        self.k_p = float(k_p)
        self.ema_decay = float(ema_decay)
        self.lambda_min = float(lambda_min)
        self.lambda_max = float(lambda_max)
        self.max_relative_error = None if max_relative_error is None else float(max_relative_error)
        self.lambda_r = float(lambda_init)
        self.bpp_ema: float | None = None

    def _next_lambda(self) -> float:
        error = (self.bpp_ema - self.target_bpp) / self.target_bpp
        if self.max_relative_error is not None:
            error = min(max(error, -self.max_relative_error), self.max_relative_error)
        log_lam = math.log(self.lambda_r) + self.k_p * error
        return min(max(math.exp(log_lam), self.lambda_min), self.lambda_max)


class TwoLevelRateController(_EMAController):
    """HiFiC's switch: lambda_R = lambda_a while bpp_ema > target_bpp, else lambda_b (lambda_a > lambda_b)."""

    def __init__(self, lambda_a: float, lambda_b: float, target_bpp: float, ema_decay: float = 0.0):
        if not lambda_a > lambda_b > 0:
            raise ValueError(
                f"need lambda_a > lambda_b > 0 (lambda_a applies above the target), got "
                f"{lambda_a}, {lambda_b}"
            )
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.lambda_a = float(lambda_a)
        self.lambda_b = float(lambda_b)
        self.target_bpp = float(target_bpp)
        self.ema_decay = float(ema_decay)
        self.lambda_r = self.lambda_a
        self.bpp_ema: float | None = None

    def _next_lambda(self) -> float:
        return self.lambda_a if self.bpp_ema > self.target_bpp else self.lambda_b
