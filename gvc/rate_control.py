"""Rate controllers for the rate weight lambda_R (docs/METHOD.md section 1.4); pure Python/torch, checkpointable.

lambda_R MULTIPLIES the rate term (gvc.objectives: C * (lambda_R * R + C_D * MSE) + ...; HiFiC writes R / lambda,
so our lambda_R is HiFiC's 1 / lambda): a larger lambda_R means fewer bits. The measured bpp a controller reads
is the bpp of the ROUNDED latents (`bpp_q`, what the file carries), never the noisy training rate (docs/METHOD.md section 1.4).
Under DDP the caller all-reduces (averages) the measured bpp before `update`, or passes `reduce_fn` to
`update_from_tensor`, so every rank computes the same lambda_R. `steps` counts updates (one per applied
training step) and drives the two-level controller's early schedule; it is part of the state.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

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
    steps: int = 0

    def _next_lambda(self) -> float:
        raise NotImplementedError

    def update(self, measured_bpp: float) -> float:
        """Feed one (already all-reduced) batch bpp; returns the new lambda_R."""
        measured_bpp = _measured(measured_bpp, None)
        d = self.ema_decay
        self.bpp_ema = measured_bpp if self.bpp_ema is None else d * self.bpp_ema + (1 - d) * measured_bpp
        self.lambda_r = self._next_lambda()
        self.steps += 1
        return self.lambda_r

    def update_from_tensor(
        self, bpp: torch.Tensor | float, reduce_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> float:
        """Like update, from a bpp tensor (its mean is taken); reduce_fn (e.g. an all-reduce mean) runs first."""
        return self.update(_measured(bpp, reduce_fn))

    def state_dict(self) -> dict:
        return {"lambda_r": self.lambda_r, "bpp_ema": self.bpp_ema, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.lambda_r = float(state["lambda_r"])
        self.bpp_ema = None if state["bpp_ema"] is None else float(state["bpp_ema"])
        self.steps = int(state.get("steps", 0))


class ProportionalRateController(_EMAController):
    """log lambda_R += k_p * e, e = (bpp_ema - target_bpp) / target_bpp, lambda_R clamped to [lambda_min, lambda_max].

    bpp_ema is an exponential moving average (decay `ema_decay`) of the measured batch bpp, started at the first
    measurement. `max_relative_error` (None: off) clips e to [-max, max], so the far-off bpp of a fresh model
    (often several times the target) cannot drive lambda_R up by orders of magnitude before the networks react.
    Form [ours]; the paper only says a proportional controller is used.
    """

    def __init__(
        self,
        *,
        target_bpp: float,
        lambda_init: float,
        k_p: float,
        ema_decay: float,
        lambda_min: float,
        lambda_max: float,
        max_relative_error: float | None,
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
    """HiFiC's switch: lambda_R = lambda_a while bpp_ema > target, else lambda_b (lambda_a > lambda_b).

    In our multiplying form HiFiC's values are lambda_a = 1 / (0.1 * 2^-6) = 640 and lambda_b = 1 / (0.1 * 2) = 5.
    HiFiC's early schedule: for the first `schedule_steps` updates the target is multiplied by `target_factor`
    (0.20 / 0.14) and the rate weight by `lambda_factor` (0.5: HiFiC's lambda x 2).
    """

    def __init__(
        self,
        *,
        lambda_a: float,
        lambda_b: float,
        target_bpp: float,
        ema_decay: float,
        schedule_steps: int,
        target_factor: float,
        lambda_factor: float,
    ):
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
        if target_factor <= 0 or lambda_factor <= 0 or schedule_steps < 0:
            raise ValueError("need target_factor > 0, lambda_factor > 0 and schedule_steps >= 0")
        self.schedule_steps = int(schedule_steps)
        self.target_factor = float(target_factor)
        self.lambda_factor = float(lambda_factor)
        self.lambda_r = self.lambda_a * (self.lambda_factor if self.schedule_steps > 0 else 1.0)
        self.bpp_ema: float | None = None
        self.steps = 0

    def current_target(self) -> float:
        """The target in force now (x target_factor during the early schedule)."""
        early = self.steps < self.schedule_steps
        return self.target_bpp * (self.target_factor if early else 1.0)

    def _next_lambda(self) -> float:
        early = self.steps < self.schedule_steps
        lam = self.lambda_a if self.bpp_ema > self.current_target() else self.lambda_b
        return lam * (self.lambda_factor if early else 1.0)


@dataclass(frozen=True)
class LevelBpp:
    """A batch's rounded-latent bpp per item (B,) and each item's quality level (B,) int: what a variable-rate
    training step feeds `MultiRateController` (through gvc.training.update.TrainingUpdate)."""

    values: torch.Tensor
    levels: torch.Tensor


class MultiRateController:
    """One proportional controller per quality level of a variable-rate codec (conf/rate/multi.yaml).

    targets: the target bpp of each level, strictly increasing (level 0 the lowest rate); `law`: the other
    arguments of ProportionalRateController (lambda_init, k_p, ema_decay, lambda_min, lambda_max,
    max_relative_error), shared by the levels. Training draws a level per batch item (`draw`), weighs
    each item's rate by its level's lambda_R (`lambdas`) and feeds each level the mean rounded-latent bpp of its
    items (`update_levels`): the per-level sums and counts are all-reduced first (`reduce_levels`), so under DDP
    every rank holds the same vector. A level no item drew on any rank is left as it is.

    `lambda_r` (a summary for logs and records) is the geometric mean of the levels' lambda_R; `steps` counts
    updates. The checkpoint state is the list of per-level states.

    target_bpp: a single-rate experiment's target (conf/experiment/*.yaml set one for rate=proportional); the
    levels train to `targets` instead, so it is not used, and a warning says so.
    """

    def __init__(self, *, targets, target_bpp: float | None = None, **law):
        targets = [float(t) for t in targets]
        if len(targets) < 2 or any(b <= a for a, b in zip(targets, targets[1:])):
            raise ValueError(f"rate.targets must be at least 2 strictly increasing bpp values, got {targets}")
        if target_bpp is not None:
            warnings.warn(
                f"rate.target_bpp={target_bpp} (a single-rate target) is not used by rate=multi: each level "
                f"trains to its own rate.targets {targets}",
                stacklevel=2,
            )
        self.targets = targets
        self.levels = [ProportionalRateController(target_bpp=t, **law) for t in targets]
        self.steps = 0

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def lambda_r(self) -> float:
        return math.exp(sum(math.log(c.lambda_r) for c in self.levels) / len(self.levels))

    @property
    def bpp_ema(self) -> float | None:
        """The mean of the levels' bpp EMAs (None until every level was fed)."""
        emas = [c.bpp_ema for c in self.levels]
        return None if any(e is None for e in emas) else sum(emas) / len(emas)

    def draw(self, batch: int, device: torch.device | str = "cpu", generator=None) -> torch.Tensor:
        """A uniformly drawn level per batch item: (batch,) int64 in [0, num_levels)."""
        return torch.randint(0, self.num_levels, (batch,), generator=generator).to(device)

    def lambdas(self, levels: torch.Tensor) -> torch.Tensor:
        """lambda_R of each item's level: (B,) float32 on the levels' device."""
        table = torch.tensor([c.lambda_r for c in self.levels], dtype=torch.float32)
        return table[levels.detach().long().cpu()].to(levels.device)

    def reduce_levels(
        self,
        bpp: torch.Tensor,
        levels: torch.Tensor,
        reduce_mean: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sums, counts) (num_levels,) float64 of per-item bpp (B,) by level (B,), averaged over ranks by
        `reduce_mean` (their ratio, the per-level mean, is then the mean over every rank's items)."""
        n = self.num_levels
        idx = levels.detach().long().reshape(-1)
        values = bpp.detach().double().reshape(-1)
        stacked = torch.zeros(2, n, dtype=torch.float64, device=values.device)
        stacked[0].index_add_(0, idx, values)
        stacked[1].index_add_(0, idx, torch.ones_like(values))
        if reduce_mean is not None:
            stacked = reduce_mean(stacked)
        stacked = stacked.cpu()
        return stacked[0], stacked[1]

    def update_levels(self, sums: torch.Tensor, counts: torch.Tensor) -> float:
        """Feed each level with count > 0 the mean bpp sum / count; returns the mean bpp over all items."""
        for c, s, k in zip(self.levels, sums.tolist(), counts.tolist()):
            if k > 0:
                c.update(s / k)
        self.steps += 1
        total = float(counts.sum())
        return float(sums.sum()) / total if total > 0 else float("nan")

    def update(self, measured_bpp: float) -> float:
        raise TypeError(
            "a variable-rate controller is fed per level (update_levels); the training modules do this when the "
            "codec has rate levels (model.iframe.rate_levels = the number of rate.targets)"
        )

    def state_dict(self) -> dict:
        return {"levels": [c.state_dict() for c in self.levels], "steps": self.steps, "targets": self.targets}

    def load_state_dict(self, state: dict) -> None:
        levels = state.get("levels")
        if levels is None or len(levels) != self.num_levels:
            raise ValueError(
                f"the checkpoint's rate controller has {None if levels is None else len(levels)} levels, this run "
                f"{self.num_levels}: resume with the same rate.targets"
            )
        for c, s in zip(self.levels, levels):
            c.load_state_dict(s)
        self.steps = int(state.get("steps", 0))
