"""Shared machinery of the stage-1 and stage-2 Lightning modules: thin shells around one training update.

- The update itself (optimizers, lr schedule, aux step, non-finite guard, clipping, GAN switch, rate-controller
  feed) is `gvc.training.update.TrainingUpdate`, which the benchmarks run too. The modules pass it
  `manual_backward` (precision plugins), Lightning's gradient clipping, Lightning's optimizer wrappers and the
  strategy's all-reduce, and log its `StepResult`.
- OUR step counter `gvc_step` (one per G+D training step that was applied), saved in the checkpoint; every
  schedule (warm-up, lr decay, quantization annealing, unroll T) reads it.
- Frozen helpers (LPIPS) are not written to checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import lightning as L
import torch
from torch import nn

from gvc.codec.coder import pad_frame, padded_size
from gvc.errors import CheckpointError, ConfigError, required
from gvc.objectives import (
    LossWeights,
    ObjectiveTerms,
    psnr,  # noqa: F401  (re-exported for the stage modules)
)
from gvc.rate_control import LevelBpp, MultiRateController
from gvc.training import schedule
from gvc.training.speed import to_channels_last
from gvc.training.update import OPTIMIZER_NAMES, StepResult, StrategyReducer, TrainingUpdate

CKPT_KEY = "gvc"  # our entry in the Lightning checkpoint dict


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad (..., C, H, W) on the bottom/right to multiples of `multiple`: the coder's padding
    (gvc.codec.coder.pad_frame) over any leading dims (no-op when already aligned)."""
    *lead, c, h, w = x.shape
    pw, ph = padded_size(w, h, multiple)
    return pad_frame(x.reshape(-1, c, h, w), pw, ph).reshape(*lead, c, ph, pw)


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
    """Base of IFrameModule / PFrameModule. Subclasses implement `generator_parameters`, `aux_loss`,
    `export_codec()`, call `_build_update()` at the end of their __init__ and run the update through `_update`.

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
        self.training_update: TrainingUpdate | None = None  # `_build_update`
        self.max_steps = int(self.stage_cfg["max_steps"])
        self.log_images_every = int(required(self.stage_cfg, "log_images_every_n_steps", "stage") or 0)
        self.lpips = None
        self.discriminator: nn.Module | None = None
        self._frozen_prefixes = ("lpips.",)
        self.channels_last = False  # conf channels_last (set by gvc.training.speed.apply_speed_options)
        self.variable_rate = False  # `check_rate_levels`
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
            "stage": self.stage_cfg["name"],
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
                "targets": list(ctrl.targets) if hasattr(ctrl, "targets") else None,
                "lambdas": [c.lambda_r for c in ctrl.levels] if hasattr(ctrl, "levels") else None,
                "rate_controller": json_plain(ctrl.state_dict()),
                "perceptual": json_plain(getattr(self.lpips, "spec", None)),
            },
        }
        iframe = getattr(self, "iframe_training", None)
        if iframe is not None:
            record["iframe"] = json_plain(iframe)
        return record

    # ------------------------------------------------------------------ variable rate
    def check_rate_levels(self, codec_levels: int) -> None:
        """ConfigError unless the codec's quality levels fit the controller: a variable-rate codec
        (model.iframe.rate_levels >= 2) trains with `rate=multi` and one target per level; a single-rate codec
        with a single-rate controller."""
        multi = isinstance(self.rate_controller, MultiRateController)
        if multi and codec_levels != self.rate_controller.num_levels:
            raise ConfigError(
                f"rate=multi has {self.rate_controller.num_levels} targets but the codec "
                f"{codec_levels} rate levels: set model.iframe.rate_levels={self.rate_controller.num_levels}"
            )
        if not multi and codec_levels:
            raise ConfigError(
                f"the codec has {codec_levels} rate levels (model.iframe.rate_levels): train it with rate=multi"
            )
        self.variable_rate = multi

    def draw_levels(self, batch: int, device) -> torch.Tensor | None:
        """A quality level per batch item ((B,) int64) for a variable-rate codec, None for a single rate.

        Drawn from a generator seeded by (the run's seed, our step, the global rank): a resumed run draws the
        same levels at the same step (exact resume needs no RNG state), and the ranks draw different ones."""
        if not self.variable_rate:
            return None
        rank = int(getattr(self._trainer, "global_rank", 0)) if self._trainer is not None else 0
        seed = (torch.initial_seed() * 1_000_003 + self.gvc_step * 1_009 + rank) % (2**63 - 1)
        return self.rate_controller.draw(batch, device, torch.Generator().manual_seed(seed))

    def validation_levels(self, batch: int, device) -> torch.Tensor | None:
        """Validation's quality levels: item i at level i mod Q (every level seen, the figures a mixture), None
        for a single-rate codec."""
        if not self.variable_rate:
            return None
        return (torch.arange(batch, device=device) % self.rate_controller.num_levels).float()

    def rate_weight(self, levels: torch.Tensor | None) -> float | torch.Tensor:
        """lambda_R of the objective: the controller's number, or each item's level's (B,) tensor."""
        if levels is None:
            return float(self.rate_controller.lambda_r)
        return self.rate_controller.lambdas(levels)

    @staticmethod
    def measured_rate(terms: ObjectiveTerms, levels: torch.Tensor | None):
        """What the controller is fed: the batch's bpp_q, or per item with its level (LevelBpp)."""
        return terms.bpp_q if levels is None else LevelBpp(terms.bpp_q_items, levels)

    # ------------------------------------------------------------------ the update
    def _build_update(
        self, gan_from_step: int | None = None, controller_from_step: int = 0, base_lr=None
    ) -> None:
        """Build the training update over `generator_parameters()` and `self.discriminator` (see TrainingUpdate
        for the arguments)."""
        self.training_update = TrainingUpdate(
            self.stage_cfg,
            self.rate_controller,
            list(self.generator_parameters()),
            self.discriminator,
            base_lr=base_lr,
            gan_from_step=gan_from_step,
            controller_from_step=controller_from_step,
            reducer=StrategyReducer(lambda: self._trainer.strategy if self._trainer is not None else None),
            backward=self.manual_backward,
            clip=lambda opt, max_norm, _norm: self.clip_gradients(
                opt, gradient_clip_val=max_norm, gradient_clip_algorithm="norm"
            ),
            optimizers=self._optimizers_by_name,
        )

    @property
    def gvc_step(self) -> int:
        return self.training_update.step

    @gvc_step.setter
    def gvc_step(self, value: int) -> None:
        self.training_update.step = int(value)

    @property
    def nonfinite_total(self) -> int:
        return self.training_update.nonfinite_total

    @property
    def nonfinite_in_a_row(self) -> int:
        return self.training_update.nonfinite_in_a_row

    @property
    def gan_active(self) -> bool:
        """GAN loss and D step on: loss.gan and past the warm-up."""
        return self.training_update.gan_active

    @property
    def finished(self) -> bool:
        return self.gvc_step >= self.max_steps

    def quantization(self) -> tuple[str, dict]:
        return schedule.quantization(self.gvc_step, self.stage_cfg["quantization"])

    def _set_d_trainable(self, flag: bool) -> None:
        """D's parameters take gradients only in the D step (the G step backpropagates through a frozen D)."""
        if self.discriminator is not None:
            self.discriminator.requires_grad_(flag)

    def configure_optimizers(self):
        """Fresh [G, aux(, D)] Adam optimizers of the training update (their states are in the checkpoint)."""
        return self.training_update.build_optimizers()

    def _optimizers_by_name(self) -> dict:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        return dict(zip(OPTIMIZER_NAMES, opts))

    def _update(self, g_loss: torch.Tensor, d_loss_fn, measured_bpp: torch.Tensor) -> StepResult:
        """Run the training update (G + aux, then D when the GAN is active) and log what it did.

        measured_bpp: the batch's rounded-latent bpp (`bpp_q`, scalar tensor) for the rate controller."""
        r = self.training_update(g_loss, self.aux_loss(), d_loss_fn, measured_bpp)

        def log(name: str, value) -> None:
            self.log(name, float(value), on_step=True, on_epoch=False)

        if r.skipped is not None:
            log("train/nonfinite_total", r.nonfinite_total)
        if r.grad_norm is not None:
            log("train/grad_norm", r.grad_norm)
            log("train/aux_loss", r.aux_loss)
        if r.grad_clipped is not None:
            # a norm above the clip on every step makes Adam see unit-norm gradients: the loss's overall scale
            # (loss.C) then no longer matters (BENCHMARKS.md, the trainer against a plain loop)
            log("train/grad_clipped", r.grad_clipped)
        if r.applied:
            if r.d_loss is not None:
                log("train/d_loss", r.d_loss)
            log("train/step", r.step)
            log("train/lambda_r", r.lambda_r)
            if r.bpp_ema is not None:
                log("train/bpp_ema", r.bpp_ema)
        return r

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
            "stage": self.stage_cfg["name"],
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
        if state.get("stage") != self.stage_cfg["name"]:
            raise CheckpointError(
                f"the checkpoint is from stage {state.get('stage')!r}, this run is stage "
                f"{self.stage_cfg['name']!r}: resume with the matching experiment, or use a new output dir "
                f"(stage 2 reads stage-1 weights through stage.iframe_ckpt)"
            )
        self.training_update.load_state_dict(state)
        self.rate_controller.load_state_dict(state["rate_controller"])
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
