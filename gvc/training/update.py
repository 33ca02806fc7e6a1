"""One training update of G, aux and D, without Lightning: what both stage modules and every benchmark run.

`TrainingUpdate` owns, for one stage (conf/stage/*.yaml):

- the optimizers, from the stage's optimizer nodes (stage.optimizer.g / aux / d, `_target_` + `_partial_`, built
  by `instantiate_optimizers`; conf/stage/*.yaml: Adam): G's with one param group per base lr (stage.lr, and stage
  2's stage.residual_lr for the residual codec), the entropy bottlenecks' quantiles' at stage.aux_lr (constant),
  D's at stage.d_lr;
- the lr schedule (stage.lr_schedule, built like the optimizers: a factor of OUR step counter on G and D,
  `gvc.training.schedule.lr_factor` in conf/stage/*.yaml; docs/METHOD.md section 1.3);
- the aux step: the aux loss is added to G's loss, so one backward gives G and the quantiles their gradients (the
  aux loss reaches only the quantiles);
- the non-finite guard: a step whose loss or gradients are not finite on ANY rank is skipped on every rank (no
  optimizer update, no controller update, no step count) and counted; stage.max_nonfinite_in_a_row skipped steps
  in a row raise gvc.errors.TrainingError;
- clipping of G's and D's global grad norm to stage.grad_clip (0: off); G's norm before the clip is reported;
- the GAN switch: D is stepped, and the caller's objective should include the GAN term, from `gan_from_step` on
  (stage.warmup_steps; stage 2 also waits for its flow warm-up);
- the rate controller's feed: the rounded-latent bpp averaged over all ranks (docs/METHOD.md section 1.4), from
  `controller_from_step` on (stage 2 holds lambda_R through its flow warm-up).

Rank sync goes through a reducer: `LocalReducer` (one process), `DistributedReducer` (torch.distributed) or
`StrategyReducer` (a Lightning strategy, duck-typed: no Lightning import here). The caller may pass its own
backward (the Lightning modules pass `manual_backward`, so precision plugins apply), gradient clipping and the
optimizer objects to step (Lightning's wrappers of the optimizers built here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from gvc.errors import ConfigError, TrainingError, required
from gvc.rate_control import LevelBpp

OPTIMIZER_NAMES = ("g", "aux", "d")  # the order of `optimizers` (and of a Lightning checkpoint's states)


# ------------------------------------------------------------------------------------------------ rank sync
class Reducer(Protocol):
    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar tensor over all ranks (the same value on every rank)."""


class LocalReducer:
    """One process: the value itself."""

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        return value


class DistributedReducer:
    """torch.distributed's default process group (the value itself when it is not initialised or has one rank)."""

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return value
        out = value.detach().clone()
        dist.all_reduce(out)
        return out / dist.get_world_size()


class StrategyReducer:
    """A Lightning strategy's `reduce(value, reduce_op="mean")`; `strategy()` returns it, or None before a
    Trainer is attached (then, and with one rank, the value itself)."""

    def __init__(self, strategy: Callable[[], object | None]):
        self.strategy = strategy

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        s = self.strategy()
        if s is None or int(getattr(s, "world_size", 1)) == 1:
            return value
        return s.reduce(value.detach().clone(), reduce_op="mean")


# ------------------------------------------------------------------------------------------------ result
@dataclass(frozen=True)
class StepResult:
    """What one call of `TrainingUpdate` did. Losses are the batch means of the objective's units, bpp bits per
    pixel; None where the part did not run.

    applied: the step counted: G (+aux) and, with the GAN active, D were stepped and the controller fed.
        A non-finite D step leaves G's update in place but does not count the step.
    skipped: what was not finite ("generator loss or gradient" / "discriminator loss or gradient"), else None.
    step: OUR step counter after the call.
    gan_active: D was stepped (or would have been, had G been finite).
    grad_norm: G's global grad norm (its optimizer's parameters) before the clip.
    grad_clipped: grad_norm > stage.grad_clip (None when clipping is off).
    bpp: the all-reduced bpp fed to the rate controller (None when not fed: skipped, or before
        `controller_from_step`).
    lambda_r, bpp_ema: the controller's after the call.
    nonfinite_total, nonfinite_in_a_row: the skipped-step counters after the call.
    """

    applied: bool
    skipped: str | None
    step: int
    gan_active: bool
    g_loss: float
    aux_loss: float
    d_loss: float | None
    grad_norm: float | None
    grad_clipped: bool | None
    bpp: float | None
    lambda_r: float
    bpp_ema: float | None
    nonfinite_total: int
    nonfinite_in_a_row: int


# ------------------------------------------------------------------------------------------------ helpers
def _stage_value(stage: Mapping, key: str):
    return required(stage, key, "stage")


def stage_lr(stage: Mapping, residual_prefix: str | None = None) -> Callable[[str], float]:
    """The base lr (before the schedule's factor) of a generator parameter by name: stage.residual_lr for names
    starting with `residual_prefix` (stage 2's residual codec, initialised from the I-frame codec) when it is
    not null, stage.lr otherwise."""
    lr = float(_stage_value(stage, "lr"))
    residual = _stage_value(stage, "residual_lr") if residual_prefix is not None else None

    def base_lr(name: str) -> float:
        if residual is not None and name.startswith(residual_prefix):
            return float(residual)
        return lr

    return base_lr


def instantiate_optimizers(stage: Mapping, instantiate: Callable[..., object]) -> dict:
    """`stage` (a plain mapping) with its optimizer nodes (stage.optimizer.g / aux / d) and its lr schedule
    (stage.lr_schedule), all `_target_` + `_partial_: true`, built by `instantiate` (hydra.utils.instantiate;
    training never imports Hydra): each optimizer a callable (params, lr=...) -> torch.optim.Optimizer, the
    schedule a callable (step) -> lr factor; what TrainingUpdate takes."""
    nodes = _stage_value(stage, "optimizer")
    return {
        **stage,
        "optimizer": {name: instantiate(node, _convert_="all") for name, node in nodes.items()},
        "lr_schedule": instantiate(_stage_value(stage, "lr_schedule"), _convert_="all"),
    }


def _built(node: Mapping, key: str, what: str, where: str = "stage") -> Callable:
    """node[key] as built by `instantiate_optimizers`; ConfigError for a missing or unbuilt one."""
    value = required(node, key, where)
    if isinstance(value, Mapping) or not callable(value):
        raise ConfigError(
            f"{where}.{key} is {value!r}, not {what}: pass the stage through "
            "gvc.training.update.instantiate_optimizers (train.py does)"
        )
    return value


def _optimizer_factory(stage: Mapping, name: str) -> Callable[..., torch.optim.Optimizer]:
    """stage.optimizer.<name> as built by `instantiate_optimizers`."""
    return _built(_stage_value(stage, "optimizer"), name, "a built optimizer", "stage.optimizer")


def _default_clip(optimizer: torch.optim.Optimizer, max_norm: float, total_norm: torch.Tensor | None) -> None:
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if total_norm is None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    else:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total_norm)


def _all_finite(loss: torch.Tensor, params: Iterable[nn.Parameter]) -> torch.Tensor:
    """1.0 when the loss and every existing gradient of `params` are finite, else 0.0 (a scalar tensor)."""
    ok = torch.isfinite(loss.detach()).all()
    grads = [p.grad for p in params if p.grad is not None]
    if grads and bool(ok):
        norms = torch.stack([g.detach().float().abs().sum() for g in grads])
        ok = torch.isfinite(norms).all()
    return ok.float()


# ------------------------------------------------------------------------------------------------ the update
class TrainingUpdate:
    """One G / aux / D update per call (see the module docstring).

    Args:
        stage: conf/stage/*.yaml as a mapping (lr, aux_lr, d_lr, optimizer built by `instantiate_optimizers`,
            lr_schedule built by `instantiate_optimizers`, grad_clip, max_nonfinite_in_a_row, warmup_steps).
        rate_controller: a gvc.rate_control controller (update(bpp) -> lambda_R).
        generator: G's (name, parameter) pairs; names ending in "quantiles" go to the aux optimizer, parameters
            without requires_grad to none.
        discriminator: D, or None (no GAN: no D optimizer, no D step).
        base_lr: base lr of a G parameter by name (default `stage_lr(stage)`).
        gan_from_step: first step with the GAN on (default stage.warmup_steps).
        controller_from_step: first step whose bpp feeds the controller (default 0).
        reducer: rank sync (default `LocalReducer`).
        backward: loss -> None (default `loss.backward()`).
        clip: (optimizer, max_norm, total_norm or None) -> None, clipping that optimizer's gradients (default
            torch.nn.utils on its parameters).
        optimizers: () -> {"g", "aux", "d"} optimizers to zero and step (default the ones built here); they must
            share the param groups of the built ones (Lightning's wrappers do).
    """

    def __init__(
        self,
        stage: Mapping,
        rate_controller,
        generator: Iterable[tuple[str, nn.Parameter]],
        discriminator: nn.Module | None = None,
        *,
        base_lr: Callable[[str], float] | None = None,
        gan_from_step: int | None = None,
        controller_from_step: int = 0,
        reducer: Reducer | None = None,
        backward: Callable[[torch.Tensor], None] | None = None,
        clip: Callable[[torch.optim.Optimizer, float, torch.Tensor | None], None] | None = None,
        optimizers: Callable[[], Mapping[str, torch.optim.Optimizer]] | None = None,
    ):
        self.stage = stage
        self.rate_controller = rate_controller
        self.discriminator = discriminator
        self.lr = float(_stage_value(stage, "lr"))
        self.aux_lr = float(_stage_value(stage, "aux_lr"))
        self.d_lr = float(_stage_value(stage, "d_lr"))
        self.optimizer_factories = {name: _optimizer_factory(stage, name) for name in OPTIMIZER_NAMES}
        self.lr_schedule = _built(stage, "lr_schedule", "a built lr schedule (step -> factor)")
        self.grad_clip = float(_stage_value(stage, "grad_clip") or 0.0)
        self.max_nonfinite_in_a_row = int(_stage_value(stage, "max_nonfinite_in_a_row"))
        self.gan_from_step = int(
            _stage_value(stage, "warmup_steps") if gan_from_step is None else gan_from_step
        )
        self.controller_from_step = int(controller_from_step)
        self.base_lr = base_lr or stage_lr(stage)
        self.reducer = reducer or LocalReducer()
        self.backward = backward or (lambda loss: loss.backward())
        self.clip = clip or _default_clip
        self._optimizers_fn = optimizers
        self.g_params: list[nn.Parameter] = []
        self.aux_params: list[nn.Parameter] = []
        self._g_groups: dict[float, list[nn.Parameter]] = {}
        for name, p in generator:
            if not p.requires_grad:
                continue
            if name.endswith("quantiles"):
                self.aux_params.append(p)
            else:
                self.g_params.append(p)
                self._g_groups.setdefault(float(self.base_lr(name)), []).append(p)
        if not self._g_groups:
            raise ConfigError("no trainable generator parameters")
        self.step = 0
        self.nonfinite_total = 0
        self.nonfinite_in_a_row = 0
        self.optimizers = self.build_optimizers()

    # ------------------------------------------------------------------ optimizers and schedules
    def build_optimizers(self) -> list[torch.optim.Optimizer]:
        """Fresh optimizers [G, aux(, D)] from `optimizer_factories` (also kept as `self.optimizers`); G's param
        groups carry "base_lr" (the lr before the schedule's factor)."""
        make = self.optimizer_factories
        groups = [{"params": ps, "lr": lr, "base_lr": lr} for lr, ps in self._g_groups.items()]
        opts = [make["g"](groups, lr=self.lr), make["aux"](self.aux_params, lr=self.aux_lr)]
        if self.discriminator is not None:
            opts.append(make["d"](self.discriminator.parameters(), lr=self.d_lr))
        self.optimizers = opts
        return opts

    def _by_name(self) -> Mapping[str, torch.optim.Optimizer]:
        if self._optimizers_fn is not None:
            return self._optimizers_fn()
        return dict(zip(OPTIMIZER_NAMES, self.optimizers))

    @property
    def gan_active(self) -> bool:
        """D is stepped (and the objective should include the GAN term) at the current step."""
        return self.discriminator is not None and self.step >= self.gan_from_step

    def lr_factor(self) -> float:
        """The lr factor of G and D at our step (stage.lr_schedule)."""
        return float(self.lr_schedule(self.step))

    def _apply_lr_schedule(self, opts: Mapping[str, torch.optim.Optimizer]) -> None:
        """G's groups and D at base * the schedule's factor; the aux (quantile) lr stays constant."""
        factor = self.lr_factor()
        for group in opts["g"].param_groups:
            group["lr"] = float(group.get("base_lr", self.lr)) * factor
        for group in opts["aux"].param_groups:
            group["lr"] = self.aux_lr
        if "d" in opts:
            for group in opts["d"].param_groups:
                group["lr"] = self.d_lr * factor

    def freeze_discriminator(self) -> None:
        """D's parameters take no gradient (call before G's forward: G backpropagates through a frozen D)."""
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict:
        return {
            "step": int(self.step),
            "nonfinite_total": int(self.nonfinite_total),
            "nonfinite_in_a_row": int(self.nonfinite_in_a_row),
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.step = int(state["step"])
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        self.nonfinite_in_a_row = int(state.get("nonfinite_in_a_row", 0))

    # ------------------------------------------------------------------ the update
    def _finite_everywhere(self, loss: torch.Tensor, params: Iterable[nn.Parameter]) -> bool:
        return float(self.reducer.mean(_all_finite(loss, params))) == 1.0

    def _skip(self, what: str, opts: Iterable[torch.optim.Optimizer], **values) -> StepResult:
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        self.nonfinite_in_a_row += 1
        self.nonfinite_total += 1
        if self.nonfinite_in_a_row >= self.max_nonfinite_in_a_row:
            raise TrainingError(
                f"{self.nonfinite_in_a_row} training steps in a row had a non-finite {what} (last at step "
                f"{self.step}; {self.nonfinite_total} in total); the run diverged: lower stage.lr, check the "
                f"data for NaN/Inf frames, or resume from an earlier checkpoint"
            )
        return self._result(False, what, **values)

    def _result(self, applied: bool, skipped: str | None, **values) -> StepResult:
        ctrl = self.rate_controller
        ema = getattr(ctrl, "bpp_ema", None)
        base = {"d_loss": None, "grad_norm": None, "grad_clipped": None, "bpp": None}
        return StepResult(
            applied=applied,
            skipped=skipped,
            step=self.step,
            lambda_r=float(ctrl.lambda_r),
            bpp_ema=None if ema is None else float(ema),
            nonfinite_total=self.nonfinite_total,
            nonfinite_in_a_row=self.nonfinite_in_a_row,
            **{**base, **values},
        )

    def __call__(
        self,
        g_loss: torch.Tensor,
        aux_loss: torch.Tensor,
        d_loss_fn: Callable[[], torch.Tensor] | None,
        bpp: torch.Tensor | float,
    ) -> StepResult:
        """One update.

        g_loss: G's objective (scalar tensor, with the GAN term when `gan_active`); aux_loss: the entropy
        bottlenecks' aux loss (scalar, reaches only the quantiles); d_loss_fn: () -> D's loss on the same
        forward (called only when `gan_active`); bpp: the batch's rounded-latent bpp (scalar, bits per pixel),
        all-reduced and fed to the rate controller from `controller_from_step` on; for a variable-rate codec a
        `gvc.rate_control.LevelBpp` (per item, with each item's level), reduced and fed per level.
        """
        opts = self._by_name()
        self._apply_lr_schedule(opts)
        gan = self.gan_active
        loss = g_loss + aux_loss
        opts["g"].zero_grad(set_to_none=True)
        opts["aux"].zero_grad(set_to_none=True)
        self.backward(loss)
        values = {"gan_active": gan, "g_loss": float(g_loss.detach()), "aux_loss": float(aux_loss.detach())}
        if not self._finite_everywhere(loss, self.g_params + self.aux_params):
            return self._skip("generator loss or gradient", (opts["g"], opts["aux"]), **values)
        norm = torch.nn.utils.get_total_norm([p.grad for p in self.g_params if p.grad is not None])
        values["grad_norm"] = float(norm)
        if self.grad_clip > 0:
            values["grad_clipped"] = values["grad_norm"] > self.grad_clip
            self.clip(opts["g"], self.grad_clip, norm)
        opts["g"].step()
        opts["aux"].step()

        if gan:
            opt_d = opts["d"]
            self.discriminator.requires_grad_(True)
            opt_d.zero_grad(set_to_none=True)
            d_loss = d_loss_fn()
            self.backward(d_loss)
            values["d_loss"] = float(d_loss.detach())
            if not self._finite_everywhere(d_loss, self.discriminator.parameters()):
                self.freeze_discriminator()
                return self._skip("discriminator loss or gradient", (opt_d,), **values)
            if self.grad_clip > 0:
                self.clip(opt_d, self.grad_clip, None)
            opt_d.step()
            self.freeze_discriminator()

        feed = self.step >= self.controller_from_step
        if isinstance(bpp, LevelBpp):  # a variable-rate codec: one controller per level, reduced per level
            sums, counts = self.rate_controller.reduce_levels(bpp.values, bpp.levels, self.reducer.mean)
            if feed:
                values["bpp"] = self.rate_controller.update_levels(sums, counts)
        else:
            bpp_t = bpp.detach().float() if isinstance(bpp, torch.Tensor) else torch.tensor(float(bpp))
            mean_bpp = float(self.reducer.mean(bpp_t))
            if feed:
                self.rate_controller.update(mean_bpp)
                values["bpp"] = mean_bpp
        self.nonfinite_in_a_row = 0
        self.step += 1
        return self._result(True, None, **values)
