"""Stage 2 [paper; docs/METHOD.md section 1.2]: P-frame codec training with a frozen stage-1 I-frame codec and staged unrolling.

Per training clip (B, T, 3, H, W), T from stage.unroll at OUR step counter: frame 0 is coded by the frozen
I-frame codec (as the decoder will: rounded, no gradient), frames 1..T-1 are P-frames predicted from the previous
reconstruction (gvc.models.video.VideoCodec.forward_clip; random residual shift per frame in training). Loss
(gvc.objectives.PFrameObjective), averaged over the T-1 P-frames:

    L_G = C * (lambda_R * R_P + C_D * mse_scale * MSE + w_flow * L_flow) + C_P * G + w_lpips * P

R_P = noisy-latent bpp of the P-frames (flow + residual latents; the loss term); the rate controller reads
bpp_q, the rounded-latent bpp (target = rate.target_bpp of P-frames); P = perceptual distance (outside C);
L_flow = Charbonnier(flow_hat - flow_ref) against the frozen estimator's flow (paper Eq. 6), w_flow annealed
(stage.flow_loss) after the flow warm-up; G = non-saturating GAN loss of D_P(x_hat_t | [y_res_hat_t, y_free_t])
(latent detached; stage.conditional_d=false gives D_P a zero latent instead). D_P steps on (x_t, sg(x_hat_t))
of every P-frame, after the G step, from the same forward. E_res/G_res start from E_I/G_I
(PFrameCodec.init_from_iframe).

Flow warm-up [ours, docs/METHOD.md section 3.6]: for the first stage.flow_warmup_steps the residual branch is off and x_hat is the
motion-compensated prediction, so the flow codec must explain the frame by itself (otherwise the residual
branch, pre-trained from E_I/G_I, absorbs the motion and the flow collapses); the rate controller holds
lambda_R during it. `train/flow_epe` logs the end-point error of the decoded flow against the frozen flow model.

Flow pre-training [ours, docs/METHOD.md section 3.6]: the first stage.flow_pretrain_steps (0: none; at most
stage.flow_warmup_steps, so the phase is the start of the flow warm-up) train the flow codec alone, as an
autoencoder of the reference flow: PFrameObjective(flow_only=True), C * (lambda_F * R_flow + w_flow * L_flow)
(stage.flow_loss.rate_lambda, or the held lambda_R when null). Nothing else has a gradient: no residual branch,
no distortion or GAN term, the aux loss of the flow bottleneck only. A function of the step, so a resume inside
the phase continues it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from gvc import losses
from gvc.codec.modelfile import class_path_of
from gvc.errors import CheckpointError, ConfigError, required
from gvc.objectives import PFrameObjective, flow_epe
from gvc.training import schedule
from gvc.training.base import GVCModule, pad_to_multiple, psnr
from gvc.training.speed import plain_copy
from gvc.training.update import stage_lr

log = logging.getLogger(__name__)


def load_iframe_codec(path) -> nn.Module:
    """The stage-1 IFrameCodec from a stage-1 training checkpoint (.ckpt) or a model file (.gvcm)."""
    from gvc.models.iframe import IFrameCodec
    from gvc.training.export import load_codec

    codec = load_codec(path)
    if isinstance(codec, IFrameCodec):
        return codec
    inner = getattr(codec, "iframe", None)  # a stage-2 model: reuse its I-frame codec
    if isinstance(inner, IFrameCodec):
        return inner
    raise CheckpointError(f"{path}: holds a {type(codec).__name__}, not a stage-1 I-frame codec")


def iframe_training_record(path) -> dict | None:
    """The training record of the I-frame stage behind stage.iframe_ckpt (a stage-1 record, or a stage-2 one's
    "iframe" entry); None when the file carries none."""
    from gvc.training.export import training_record

    record = training_record(path)
    if record.get("stage") == "pframe":
        record = record.get("iframe") or {}
    return record or None


class PFrameModule(GVCModule):
    """Lightning module of stage 2.

    Args:
        video: gvc.models.video.VideoCodec whose I-frame codec is frozen (freeze_iframe=True) and whose P-frame
            codec was initialised from it.
        discriminator: D_P (ConditionalDiscriminator with latent_channels = pframe.d_latent_channels) or None
            (loss.gan false).
        lpips, rate_controller, loss, stage: see GVCModule / IFrameModule.
    """

    def __init__(
        self,
        video: nn.Module,
        discriminator: nn.Module | None,
        lpips: nn.Module | None,
        rate_controller,
        loss: Mapping,
        stage: Mapping,
    ):
        super().__init__(rate_controller, loss, stage)
        self.video = video
        if not getattr(video, "freeze_iframe", False):
            raise ConfigError(
                "stage 2 trains with a frozen I-frame codec: build VideoCodec(freeze_iframe=True)"
            )
        self.unroll = schedule.check_unroll_schedule(self.stage_cfg["unroll"])
        self.conditional_d = bool(required(self.stage_cfg, "conditional_d", "stage"))
        self.flow_cfg = dict(required(self.stage_cfg, "flow_loss", "stage"))
        self.flow_warmup_steps = int(required(self.stage_cfg, "flow_warmup_steps", "stage"))
        if self.flow_warmup_steps < 0 or self.flow_warmup_steps >= self.max_steps:
            raise ConfigError(
                f"stage.flow_warmup_steps={self.flow_warmup_steps}: must be in [0, stage.max_steps={self.max_steps})"
            )
        self.flow_cfg = schedule.resolve_flow_anneal(self.flow_cfg, self.flow_warmup_steps, self.max_steps)
        self.flow_pretrain_steps = int(required(self.stage_cfg, "flow_pretrain_steps", "stage"))
        if not 0 <= self.flow_pretrain_steps <= self.flow_warmup_steps:
            raise ConfigError(
                f"stage.flow_pretrain_steps={self.flow_pretrain_steps}: must be in [0, stage.flow_warmup_steps="
                f"{self.flow_warmup_steps}] (the phase is the start of the flow warm-up): raise "
                f"stage.flow_warmup_steps to at least {self.flow_pretrain_steps}"
            )
        if self.flow_pretrain_steps and not schedule.flow_weight(0, self.flow_cfg) > 0:
            raise ConfigError(
                "stage.flow_pretrain_steps > 0 trains the flow codec on the flow loss alone: it needs "
                "stage.flow_loss.enabled=true and stage.flow_loss.start > 0"
            )
        self.discriminator = discriminator if self.weights.gan else None
        if self.weights.gan and discriminator is None:
            raise ConfigError("loss.gan is true but no discriminator was given (model.discriminator_p)")
        if self.discriminator is not None:
            want = int(video.pframe.d_latent_channels)
            have = int(self.discriminator.config["latent_channels"])  # a gvc.models discriminator
            if have != want:
                raise ConfigError(
                    f"model.discriminator_p.latent_channels={have}, but D_P is conditioned on y_res_hat and "
                    f"y_free with {want} channels: set it to {want}"
                )
        if self.weights.w_lpips > 0 and lpips is None:
            raise ConfigError("loss.w_lpips > 0 needs an LPIPS module (gvc.losses.LPIPSLoss)")
        self.lpips = lpips if self.weights.w_lpips > 0 else None
        self.objective = PFrameObjective(
            self.weights,
            self.lpips,
            conditional_d=self.conditional_d,
            flow_relative=bool(required(self.flow_cfg, "relative", "stage.flow_loss")),
            flow_rate_lambda=required(self.flow_cfg, "rate_lambda", "stage.flow_loss"),
        )
        self.size_multiple = int(video.size_multiple)
        self.check_rate_levels(int(getattr(video, "rate_levels", 0)))
        self._current_t: int | None = None
        #: the I-frame stage's training record (from stage.iframe_ckpt), kept in this stage's model file
        self.iframe_training: dict | None = None
        # the GAN waits for the flow warm-up too; the controller holds lambda_R through it (the warm-up codes no
        # residual, so its rate says nothing about the target); the residual codec has stage.residual_lr
        self._build_update(
            gan_from_step=max(int(self.stage_cfg["warmup_steps"]), self.flow_warmup_steps),
            controller_from_step=self.flow_warmup_steps,
            base_lr=stage_lr(self.stage_cfg, residual_prefix="video.pframe.res_"),
        )

    @classmethod
    def from_config(cls, model_cfg, instantiate, lpips, rate_controller, loss: Mapping, stage: Mapping):
        """Build the stage-2 models: the I-frame codec from stage.iframe_ckpt (or, with allow_random_iframe,
        random from model.iframe), model.pframe initialised from it, model.flow, model.discriminator_p."""
        from gvc.models.video import VideoCodec

        path = required(stage, "iframe_ckpt", "stage")
        iframe_training = None
        if path:
            iframe = load_iframe_codec(path)
            iframe_training = iframe_training_record(path)
            log.info("stage 2: I-frame codec from %s", path)
        elif required(stage, "allow_random_iframe", "stage"):
            iframe = instantiate(model_cfg.iframe, _convert_="all")
            log.warning(
                "stage 2 with a RANDOM I-frame codec (stage.allow_random_iframe): for smoke tests only"
            )
        else:
            raise ConfigError("stage 2 needs stage.iframe_ckpt (a stage-1 checkpoint or .gvcm model file)")
        pframe = instantiate(model_cfg.pframe, _convert_="all")
        try:  # the bottleneck too: the residual codec starts where the I-frame codec is
            pframe.init_from_iframe(iframe, copy_bottleneck=True)
        except ValueError as e:
            raise ConfigError(
                f"model.pframe does not fit the stage-1 I-frame codec ({e}); the residual codec must have the "
                f"I-frame architecture: use the model config the I-frame stage was trained with"
            ) from e
        flow = instantiate(model_cfg.flow, _convert_="all")
        video = VideoCodec(
            iframe,
            pframe,
            flow,
            freeze_iframe=True,
            checkpoint_pframes=bool(required(stage, "activation_checkpointing", "stage")),
            flow_reference=model_cfg.flow_reference,
        )
        gan = bool(required(loss, "gan", "loss"))
        disc = None
        if gan:  # D_P's condition is [y_res_hat, y_free]: its channel count is derived from the P-frame codec
            disc = instantiate(
                model_cfg.discriminator_p, latent_channels=pframe.d_latent_channels, _convert_="all"
            )
        module = cls(video, disc, lpips, rate_controller, loss, stage)
        module.iframe_training = iframe_training
        return module

    # ------------------------------------------------------------------ parts
    def generator_parameters(self):
        return self.video.pframe.named_parameters(prefix="video.pframe")

    def aux_loss(self) -> torch.Tensor:
        if self.in_flow_pretrain:  # the residual codec's quantiles stay as they are too
            return self.video.pframe.flow_bottleneck.aux_loss()
        return self.video.pframe.aux_loss()

    def export_codec(self) -> nn.Module:
        return plain_copy(self.video)

    def export_spec(self) -> dict:
        return {
            "class_path": class_path_of(self.video),
            "config": copy.deepcopy(self.video.config),
            "prefix": "video.",
        }

    # ------------------------------------------------------------------ unroll schedule
    def unroll_length(self, step: int | None = None) -> int:
        """T of the training clips at `step` (default: now)."""
        return schedule.unroll_length(self.gvc_step if step is None else step, self.unroll)

    def _sync_clip_length(self) -> None:
        """Tell the datamodule the current T when it changed (also right after start / resume)."""
        t = self.unroll_length()
        if t == self._current_t:
            return
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "set_clip_length"):
            dm.set_clip_length(t)
            log.info("unroll: T=%d from step %d", t, self.gvc_step)
        elif self._current_t is None:
            log.warning(
                "no datamodule with set_clip_length: training clips keep their length (T=%d wanted)", t
            )
        self._current_t = t

    def on_fit_start(self) -> None:
        # after a checkpoint restore and before the training iterator (and its workers) exist
        self._sync_clip_length()

    def on_train_start(self) -> None:
        self._sync_clip_length()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        self._sync_clip_length()

    # ------------------------------------------------------------------ losses
    @property
    def in_flow_warmup(self) -> bool:
        """True while the residual branch is off (stage.flow_warmup_steps)."""
        return self.gvc_step < self.flow_warmup_steps

    @property
    def in_flow_pretrain(self) -> bool:
        """True while only the flow codec trains, as a flow autoencoder (stage.flow_pretrain_steps)."""
        return self.gvc_step < self.flow_pretrain_steps

    def _clip(self, batch) -> torch.Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        if x.dim() != 5 or x.shape[1] < 2:
            raise ValueError(f"stage 2 needs clips (B, T>=2, 3, H, W), got {tuple(x.shape)}")
        return x

    def training_step(self, batch, batch_idx):
        clip = self._clip(batch)
        t_sched = self.unroll_length()
        clip = clip[:, :t_sched]  # a batch produced before a T change may be longer (never shorter than 2)
        h, w = clip.shape[-2:]
        clip_in = pad_to_multiple(clip, self.size_multiple)
        mode, qparams = self.quantization()
        self._set_d_trainable(False)
        warmup = self.in_flow_warmup
        pretrain = self.in_flow_pretrain
        levels = self.draw_levels(clip.shape[0], clip.device)  # one level per clip, I-frame included
        q = None if levels is None else levels.float()
        outs = self.video.forward_clip(clip_in, mode=mode, residual=not warmup, q=q, **qparams)
        outs = [o.cropped(h, w) for o in outs]
        if not self.video.pframe.config[
            "flow_input"
        ]:  # the flow loss and EPE still need the estimator's flow
            for t in range(1, len(outs)):
                if self.video.flow_reference == "original":
                    ref = clip_in[:, t - 1]
                else:
                    ref = pad_to_multiple(
                        self.video.reference(outs[t - 1].x_hat).detach(), self.size_multiple
                    )
                outs[t] = outs[t].replace(flow_ref=self.video.flow_estimator(ref, clip_in[:, t]))
        w_flow = schedule.flow_weight(self.gvc_step, self.flow_cfg)
        gan = self.gan_active
        lam = float(self.rate_controller.lambda_r)  # (the levels' geometric mean for a variable-rate codec)
        terms = self.objective(
            clip,
            outs,
            self.rate_weight(levels),
            w_flow,
            self.discriminator if gan else None,
            flow_only=pretrain,
        )
        g_loss = terms.loss

        def d_loss_fn():
            return self.objective.discriminator_loss(self.discriminator, clip, outs)

        i_out = outs[0]
        applied = self._update(g_loss, d_loss_fn, self.measured_rate(terms, levels)).applied
        logs = {
            "train/g_loss": g_loss.detach(),
            "train/bpp": terms.bpp.detach(),
            "train/bpp_noisy": terms.bpp.detach(),
            "train/bpp_q": terms.bpp_q,
            "train/bpp_i": losses.bpp(i_out.likelihoods, h * w).mean(),
            "train/psnr_i": psnr(i_out.x_hat, clip[:, 0]),
            "train/mse": terms.mse.detach(),
            "train/psnr": terms.psnr,
            "train/unroll_t": float(len(outs)),
            "train/w_flow": w_flow,
            "train/flow_warmup": float(warmup),
            "train/flow_pretrain": float(pretrain),
            "train/gan_active": float(gan),
        }
        if self.lpips is not None:
            logs["train/lpips"] = terms.perceptual.detach()
        if terms.flow_loss is not None:
            logs["train/flow_loss"] = terms.flow_loss.detach()
            logs["train/flow_epe"] = terms.flow_epe
        if terms.bpp_flow_q is not None:
            logs["train/bpp_flow_q"] = terms.bpp_flow_q
        if terms.sigma is not None:
            logs["train/sigma"] = terms.sigma
        if gan:
            logs["train/p_loss"] = terms.p_loss.detach()
        self.log_dict(logs, on_step=True, on_epoch=False)
        self.log("lambda_r", lam, prog_bar=True, on_step=True, on_epoch=False)
        self.log("bpp_q", terms.bpp_q, prog_bar=True, on_step=True, on_epoch=False)
        if applied and self.log_images_every and self.gvc_step % self.log_images_every == 0:
            self._log_images(
                "train/reconstruction",
                [clip[:, -1], outs[-1].x_hat, outs[-1].prediction[..., :h, :w]],
            )
        return g_loss.detach()

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch, batch_idx):
        clip = self._clip(batch)
        h, w = clip.shape[-2:]
        q = self.validation_levels(clip.shape[0], clip.device)
        outs = self.video.forward_clip(pad_to_multiple(clip, self.size_multiple), mode="round", q=q)
        n = clip.shape[0]
        p = outs[1:]
        bpp_p = torch.stack([losses.bpp(o.likelihoods, h * w).mean() for o in p]).mean()
        psnr_p = torch.stack([psnr(o.x_hat[..., :h, :w], clip[:, t + 1]) for t, o in enumerate(p)]).mean()
        mse_p = torch.stack(
            [F.mse_loss(o.x_hat[..., :h, :w].clamp(0, 1), clip[:, t + 1]) for t, o in enumerate(p)]
        ).mean()
        epe = [flow_epe(o.flow_hat, o.flow_ref) for o in p if o.flow_ref is not None]
        if epe:
            self.log("val/flow_epe", torch.stack(epe).mean(), on_epoch=True, sync_dist=True, batch_size=n)
        self.log_dict(
            {
                "val/bpp": bpp_p,
                "val/psnr": psnr_p,
                "val/mse": mse_p,
                "val/bpp_i": losses.bpp(outs[0].likelihoods, h * w).mean(),
                "val/psnr_i": psnr(outs[0].x_hat[..., :h, :w], clip[:, 0]),
            },
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            batch_size=n,
        )
        if batch_idx == 0:
            self._log_images("val/reconstruction", [clip[:, -1], outs[-1].x_hat[..., :h, :w]])
