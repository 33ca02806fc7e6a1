"""Shared machinery of the stage-1 and stage-2 Lightning modules (manual optimization of G, aux and D).

- OUR step counter `gvc_step` (one per G+D training step that was applied), saved in the checkpoint; every
  schedule (warm-up, lr decay, quantization annealing, unroll T) reads it.
- The rate controller is fed the batch bpp of the ROUNDED latents (`bpp_q`, what the file carries; no
  gradient) averaged over all ranks, so every rank holds the same lambda_R; its state is in the checkpoint. The
  noisy-latent rate is the loss term only (docs/METHOD.md section 1.4).
- Non-finite guard: a step whose loss or gradients are not finite on ANY rank is skipped on every rank (no
  optimizer update, no controller update, no step count), counted and logged; `max_nonfinite_in_a_row` skipped
  steps in a row raise gvc.errors.TrainingError.
- Frozen helpers (LPIPS) are not written to checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from gvc.errors import CheckpointError, ConfigError, TrainingError
from gvc.objectives import LossWeights, psnr  # noqa: F401  (psnr: re-exported for the stage modules)
from gvc.training import schedule
from gvc.training.speed import to_channels_last

CKPT_KEY = "gvc"  # our entry in the Lightning checkpoint dict


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad (..., H, W) on the bottom/right to multiples of `multiple` (no-op when already aligned)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    shape = x.shape
    flat = x.reshape(-1, *shape[-3:])
    return F.pad(flat, (0, pw, 0, ph), mode="replicate").reshape(*shape[:-2], h + ph, w + pw)


def json_plain(value):
    """`value` as plain JSON types (dicts, lists, str, int, float, bool, None): tuples become lists, tensors and
    numpy scalars numbers; anything else its str()."""
    if isinstance(value, Mapping):
        return {str(k): json_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return json_plain(value.tolist())
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):
        return json_plain(value.item())
    return str(value)


class GVCModule(L.LightningModule):
    """Base of IFrameModule / PFrameModule. Subclasses implement `generator_parameters`, `codec_modules`
    (modules with aux_loss), `export_codec()` and the training step through `_optimize`.

    Args:
        rate_controller: gvc.rate_control controller (update(bpp) -> lambda_R, state_dict/load_state_dict).
        loss: conf/loss as a mapping (see LossWeights), stage: conf/stage as a mapping.
    """

    def __init__(self, rate_controller, loss: Mapping, stage: Mapping):
        super().__init__()
        self.automatic_optimization = False
        self.rate_controller = rate_controller
        self.loss_cfg = dict(loss)
        self.weights = LossWeights.from_config(self.loss_cfg)
        self.stage_cfg = dict(stage)
        self.gvc_step = 0
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self.max_nonfinite_in_a_row = int(self.stage_cfg.get("max_nonfinite_in_a_row", 20))
        self.max_steps = int(self.stage_cfg["max_steps"])
        self.warmup_steps = int(self.stage_cfg.get("warmup_steps", 0))
        self.grad_clip = float(self.stage_cfg.get("grad_clip", 0.0) or 0.0)
        self.log_images_every = int(self.stage_cfg.get("log_images_every_n_steps", 0) or 0)
        self.lpips = None
        self.discriminator: nn.Module | None = None
        self._frozen_prefixes = ("lpips.",)
        self.channels_last = False  # conf channels_last (set by gvc.training.speed.apply_speed_options)
        schedule.quantization(0, self.stage_cfg["quantization"])  # validate early (ConfigError)

    # ------------------------------------------------------------------ to be provided by subclasses
    def generator_parameters(self) -> Iterable[tuple[str, nn.Parameter]]:
        raise NotImplementedError

    def export_codec(self) -> nn.Module:
        """A CPU copy of the codec to write as a .gvcm model file (the training modules stay untouched)."""
        raise NotImplementedError

    def export_spec(self) -> dict:
        """{"class_path", "config", "prefix"}: how `gvc export` rebuilds the codec from a checkpoint's state dict."""
        raise NotImplementedError

    def training_record(self) -> dict:
        """What a model file keeps of this training (plain JSON; gvc.codec.modelfile `training`): stage, step,
        the quantization config and the mode / parameters in force at this step, and the objective (loss weights,
        the controller's lambda_R, target and state, the perceptual loss spec or None). Stage 2 adds the record
        of its I-frame stage under "iframe" (`iframe_training`)."""
        mode, qparams = self.quantization()
        ctrl = self.rate_controller
        record = {
            "stage": self.stage_cfg.get("name"),
            "step": int(self.gvc_step),
            "quantization": {
                "mode": mode,
                "params": {k: float(v) for k, v in qparams.items()},
                "config": json_plain(self.stage_cfg["quantization"]),
            },
            "objective": {
                "loss": json_plain(self.loss_cfg),
                "lambda_R": float(ctrl.lambda_r),
                "target_bpp": float(ctrl.target_bpp) if hasattr(ctrl, "target_bpp") else None,
                "rate_controller": json_plain(ctrl.state_dict()),
                "perceptual": json_plain(getattr(self.lpips, "spec", None)),
            },
        }
        iframe = getattr(self, "iframe_training", None)
        if iframe is not None:
            record["iframe"] = json_plain(iframe)
        return record

    # ------------------------------------------------------------------ schedules
    @property
    def gan_active(self) -> bool:
        """GAN loss and D step on: loss.gan and past the warm-up."""
        return self.weights.gan and self.discriminator is not None and self.gvc_step >= self.warmup_steps

    @property
    def finished(self) -> bool:
        return self.gvc_step >= self.max_steps

    def quantization(self) -> tuple[str, dict]:
        return schedule.quantization(self.gvc_step, self.stage_cfg["quantization"])

    def _apply_lr_schedule(self) -> None:
        """Set the lr of G and D to base * lr_gamma^(milestones passed); the aux (quantile) lr stays constant."""
        factor = schedule.lr_factor(
            self.gvc_step, self.stage_cfg.get("lr_milestones") or [], self.stage_cfg.get("lr_gamma", 0.1)
        )
        lrs = {
            "g": float(self.stage_cfg["lr"]) * factor,
            "aux": float(self.stage_cfg["aux_lr"]),
            "d": float(self.stage_cfg["d_lr"]) * factor,
        }
        for name, opt in self._optimizers_by_name().items():
            for group in opt.param_groups:
                base = group.get("base_lr")  # G groups with their own lr (generator_base_lr)
                group["lr"] = lrs[name] if base is None or name != "g" else float(base) * factor

    def _set_d_trainable(self, flag: bool) -> None:
        """D's parameters take gradients only in the D step (the G step backpropagates through a frozen D)."""
        if self.discriminator is not None:
            self.discriminator.requires_grad_(flag)

    # ------------------------------------------------------------------ optimizers
    def generator_base_lr(self, name: str) -> float:
        """The lr (before the schedule's factor) of generator parameter `name`: stage.lr; stage 2 gives the
        residual codec its own."""
        return float(self.stage_cfg["lr"])

    def configure_optimizers(self):
        betas = tuple(self.stage_cfg.get("betas", (0.9, 0.999)))
        groups: dict[float, list] = {}
        aux = []
        for name, p in self.generator_parameters():
            if p.requires_grad:
                if name.endswith("quantiles"):
                    aux.append(p)
                else:
                    groups.setdefault(self.generator_base_lr(name), []).append(p)
        if not groups:
            raise ConfigError("no trainable generator parameters")
        param_groups = [{"params": ps, "lr": lr, "base_lr": lr} for lr, ps in groups.items()]
        opts = [torch.optim.Adam(param_groups, lr=float(self.stage_cfg["lr"]), betas=betas)]
        opts.append(torch.optim.Adam(aux, lr=float(self.stage_cfg["aux_lr"])))
        if self.discriminator is not None:
            opts.append(
                torch.optim.Adam(
                    self.discriminator.parameters(), lr=float(self.stage_cfg["d_lr"]), betas=betas
                )
            )
        return opts

    def _optimizers_by_name(self) -> dict:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        names = ["g", "aux", "d"][: len(opts)]
        return dict(zip(names, opts))

    # ------------------------------------------------------------------ distributed helpers
    def _mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """Average a scalar tensor over all ranks (identity on one process)."""
        if self.trainer is None or self.trainer.world_size == 1:
            return value
        return self.trainer.strategy.reduce(value.detach().clone(), reduce_op="mean")

    def _finite_everywhere(self, loss: torch.Tensor, params: Iterable[nn.Parameter]) -> bool:
        """True iff the loss and every existing gradient of `params` are finite on every rank."""
        ok = bool(torch.isfinite(loss.detach()).all())
        if ok:
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                norms = torch.stack([g.detach().float().abs().sum() for g in grads])
                ok = bool(torch.isfinite(norms).all())
        flag = torch.tensor(0.0 if ok else 1.0, device=loss.device)
        return float(self._mean_over_ranks(flag)) == 0.0

    def _nonfinite(self, what: str) -> None:
        self.nonfinite_in_a_row += 1
        self.nonfinite_total += 1
        self.log("train/nonfinite_total", float(self.nonfinite_total), on_step=True, on_epoch=False)
        if self.nonfinite_in_a_row >= self.max_nonfinite_in_a_row:
            raise TrainingError(
                f"{self.nonfinite_in_a_row} training steps in a row had a non-finite {what} (last at step "
                f"{self.gvc_step}; {self.nonfinite_total} in total); the run diverged: lower stage.lr, check the "
                f"data for NaN/Inf frames, or resume from an earlier checkpoint"
            )

    # ------------------------------------------------------------------ the shared optimization step
    def _optimize(
        self, g_loss: torch.Tensor, d_loss_fn, measured_bpp: torch.Tensor, update_controller: bool = True
    ) -> bool:
        """Apply one G (+aux) update from `g_loss` and, when the GAN is active, one D update from `d_loss_fn()`.

        measured_bpp: the batch's rounded-latent bpp (`bpp_q`, scalar tensor), fed (all-reduced) to the rate
        controller unless update_controller is False (the P-frame flow warm-up codes no residual, so its rate
        says nothing about the target). Returns False when the step was skipped as non-finite.
        """
        opts = self._optimizers_by_name()
        self._apply_lr_schedule()
        g_params = [p for _, p in self.generator_parameters() if p.requires_grad]
        aux = self.aux_loss()
        opts["g"].zero_grad(set_to_none=True)
        opts["aux"].zero_grad(set_to_none=True)
        self.manual_backward(g_loss + aux)
        if not self._finite_everywhere(g_loss + aux, g_params):
            opts["g"].zero_grad(set_to_none=True)
            opts["aux"].zero_grad(set_to_none=True)
            self._nonfinite("generator loss or gradient")
            return False
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in g_params if p.grad is not None])
        self.log("train/grad_norm", grad_norm.detach(), on_step=True, on_epoch=False)
        if self.grad_clip > 0:
            # a norm above the clip on every step makes Adam see unit-norm gradients: the loss's overall scale
            # (loss.C) then no longer matters (BENCHMARKS.md, the trainer against a plain loop)
            self.log("train/grad_clipped", float(grad_norm > self.grad_clip), on_step=True, on_epoch=False)
            self.clip_gradients(opts["g"], gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        opts["g"].step()
        opts["aux"].step()
        self.log("train/aux_loss", aux.detach(), on_step=True, on_epoch=False)

        if self.gan_active:
            opt_d = opts["d"]
            self._set_d_trainable(True)
            opt_d.zero_grad(set_to_none=True)
            d_loss = d_loss_fn()
            self.manual_backward(d_loss)
            if not self._finite_everywhere(d_loss, self.discriminator.parameters()):
                opt_d.zero_grad(set_to_none=True)
                self._nonfinite("discriminator loss or gradient")
                return False
            if self.grad_clip > 0:
                self.clip_gradients(opt_d, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
            opt_d.step()
            self.log("train/d_loss", d_loss.detach(), on_step=True, on_epoch=False)

        bpp = float(self._mean_over_ranks(measured_bpp.detach().float()))
        if update_controller:
            self.rate_controller.update(bpp)
        self.nonfinite_in_a_row = 0
        self.gvc_step += 1
        self.log("train/step", float(self.gvc_step), on_step=True, on_epoch=False)
        self.log("train/lambda_r", float(self.rate_controller.lambda_r), on_step=True, on_epoch=False)
        if self.rate_controller.bpp_ema is not None:
            self.log("train/bpp_ema", float(self.rate_controller.bpp_ema), on_step=True, on_epoch=False)
        return True

    def aux_loss(self) -> torch.Tensor:
        """Sum of aux_loss() of every codec part with an entropy bottleneck being trained."""
        raise NotImplementedError

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return to_channels_last(batch) if self.channels_last else batch

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.finished:
            self.trainer.should_stop = True

    def on_train_batch_start(self, batch, batch_idx):
        if self.finished:  # e.g. resumed from a checkpoint of a finished run
            self.trainer.should_stop = True
            return -1
        return None

    # ------------------------------------------------------------------ checkpoint state
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CKPT_KEY] = {
            "step": int(self.gvc_step),
            "rate_controller": self.rate_controller.state_dict(),
            "nonfinite_total": int(self.nonfinite_total),
            "nonfinite_in_a_row": int(self.nonfinite_in_a_row),
            "stage": self.stage_cfg.get("name"),
            "export": {**self.export_spec(), "training": self.training_record()},
        }
        sd = checkpoint.get("state_dict", {})
        for k in [k for k in sd if k.startswith(self._frozen_prefixes)]:
            del sd[k]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get(CKPT_KEY)
        if state is None:
            raise CheckpointError(
                "the checkpoint has no gvc training state: it was not written by gvc.training"
            )
        if state.get("stage") != self.stage_cfg.get("name"):
            raise CheckpointError(
                f"the checkpoint is from stage {state.get('stage')!r}, this run is stage "
                f"{self.stage_cfg.get('name')!r}: resume with the matching experiment, or use a new output dir "
                f"(stage 2 reads stage-1 weights through stage.iframe_ckpt)"
            )
        self.gvc_step = int(state["step"])
        self.rate_controller.load_state_dict(state["rate_controller"])
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        self.nonfinite_in_a_row = int(state.get("nonfinite_in_a_row", 0))
        # frozen helpers are not stored: put the current ones back so strict loading passes
        sd = checkpoint.setdefault("state_dict", {})
        for k, v in self.state_dict().items():
            if k.startswith(self._frozen_prefixes):
                sd[k] = v

    # ------------------------------------------------------------------ logging helpers
    def _log_images(self, tag: str, rows: list[torch.Tensor]) -> None:
        """Log a grid (one row per tensor (N,3,H,W) in [0,1]) to wandb when a WandbLogger is active."""
        loggers = [lg for lg in self.loggers if type(lg).__name__ == "WandbLogger"]
        if not loggers or not self.trainer.is_global_zero:
            return
        import torchvision

        n = min(4, rows[0].shape[0])
        grid = torchvision.utils.make_grid(
            torch.cat([r[:n].detach().float().clamp(0, 1).cpu() for r in rows]), nrow=n
        )
        image = (
            (grid * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
        )  # HWC uint8: unambiguous to wandb
        for lg in loggers:
            lg.log_image(key=tag, images=[image], step=self.gvc_step)
