"""Stage 2 [paper SPEC 1, 3]: P-frame codec training with a frozen stage-1 I-frame codec and staged unrolling.

Per training clip (B, T, 3, H, W), T from stage.unroll at OUR step counter: frame 0 is coded by the frozen
I-frame codec (as the decoder will: rounded, no gradient), frames 1..T-1 are P-frames predicted from the previous
reconstruction (gvc.models.video.VideoCodec.forward_clip; random residual shift per frame in training). Loss,
averaged over the T-1 P-frames:

    L_G = C * (lambda_R * R_P + C_D * D + w_flow * L_flow) + C_P * P

R_P = estimated bpp of the P-frames (flow + residual latents), the rate controller's measure (target =
rate.target_bpp of P-frames); D = mse_scale * MSE + w_lpips * LPIPS; L_flow = Charbonnier(flow_hat - flow_ref)
against the frozen estimator's flow (paper Eq. 6), w_flow annealed (stage.flow_loss); P = non-saturating GAN
loss of D_P(x_hat_t | [y_res_hat_t, y_free_t]) (latent detached; stage.conditional_d=false gives D_P a zero
latent instead). D_P steps on (x_t, x_hat_t.detach()) of every P-frame, after the G step, from the same forward.
E_res/G_res start from E_I/G_I (PFrameCodec.init_from_iframe).
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
from gvc.errors import CheckpointError, ConfigError
from gvc.training import schedule
from gvc.training.base import GVCModule, pad_to_multiple, psnr
from gvc.training.speed import plain_copy

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
        self.conditional_d = bool(self.stage_cfg.get("conditional_d", True))
        self.flow_cfg = dict(self.stage_cfg.get("flow_loss") or {"enabled": False})
        self.discriminator = discriminator if self.weights.gan else None
        if self.weights.gan and discriminator is None:
            raise ConfigError("loss.gan is true but no discriminator was given (model.discriminator_p)")
        if self.discriminator is not None:
            want = int(video.pframe.d_latent_channels)
            have = int(getattr(self.discriminator, "config", {}).get("latent_channels", want))
            if have != want:
                raise ConfigError(
                    f"model.discriminator_p.latent_channels={have}, but D_P is conditioned on y_res_hat and "
                    f"y_free with {want} channels: set it to {want}"
                )
        if self.weights.w_lpips > 0 and lpips is None:
            raise ConfigError("loss.w_lpips > 0 needs an LPIPS module (gvc.losses.LPIPSLoss)")
        self.lpips = lpips if self.weights.w_lpips > 0 else None
        self.size_multiple = int(video.size_multiple)
        self._current_t: int | None = None

    @classmethod
    def from_config(cls, model_cfg, instantiate, lpips, rate_controller, loss: Mapping, stage: Mapping):
        """Build the stage-2 models: the I-frame codec from stage.iframe_ckpt (or, with allow_random_iframe,
        random from model.iframe), model.pframe initialised from it, model.flow, model.discriminator_p."""
        from gvc.models.video import VideoCodec

        path = stage.get("iframe_ckpt")
        if path:
            iframe = load_iframe_codec(path)
            log.info("stage 2: I-frame codec from %s", path)
        elif stage.get("allow_random_iframe", False):
            iframe = instantiate(model_cfg.iframe, _convert_="all")
            log.warning(
                "stage 2 with a RANDOM I-frame codec (stage.allow_random_iframe): for smoke tests only"
            )
        else:
            raise ConfigError("stage 2 needs stage.iframe_ckpt (a stage-1 checkpoint or .gvcm model file)")
        pframe = instantiate(model_cfg.pframe, _convert_="all")
        try:
            pframe.init_from_iframe(iframe)
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
            checkpoint_pframes=bool(stage.get("activation_checkpointing", False)),
        )
        gan = bool(loss.get("gan", True))
        disc = instantiate(model_cfg.discriminator_p, _convert_="all") if gan else None
        return cls(video, disc, lpips, rate_controller, loss, stage)

    # ------------------------------------------------------------------ parts
    def generator_parameters(self):
        return self.video.pframe.named_parameters(prefix="video.pframe")

    def aux_loss(self) -> torch.Tensor:
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
    def distortion(self, x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        mse = losses.mse(x_hat, x)
        dist = self.weights.mse_scale * mse
        parts = {"mse": mse.detach()}
        if self.lpips is not None:
            lp = self.lpips(x_hat, x)
            dist = dist + self.weights.w_lpips * lp
            parts["lpips"] = lp.detach()
        return dist, parts

    def _d_condition(self, out: dict) -> torch.Tensor:
        latent = out["d_latent"].detach()
        return latent if self.conditional_d else torch.zeros_like(latent)

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
        outs = self.video.forward_clip(clip_in, mode=mode, **qparams)
        w_flow = schedule.flow_weight(self.gvc_step, self.flow_cfg)
        gan = self.gan_active
        wt = self.weights
        lam = float(self.rate_controller.lambda_r)
        n_p = len(outs) - 1
        bpp = dist = flow = p_loss = 0.0
        mse_sum = lp_sum = psnr_sum = 0.0
        fakes = []
        for t in range(1, len(outs)):
            o = outs[t]
            x = clip[:, t]
            x_hat = o["x_hat"][..., :h, :w]
            bpp = bpp + losses.bpp(o["likelihoods"], h * w).mean() / n_p
            d_t, parts = self.distortion(x_hat, x)
            dist = dist + d_t / n_p
            mse_sum = mse_sum + parts["mse"] / n_p  # detached tensors: no device sync per frame
            lp_sum = lp_sum + parts.get("lpips", 0.0) / n_p
            psnr_sum = psnr_sum + psnr(x_hat.detach(), x) / n_p
            if w_flow > 0:
                flow_ref = o.get("flow_ref")
                if flow_ref is None:  # flow input off: ask the estimator for the loss target
                    ref = outs[t - 1]["x_hat"].clamp(0, 1).detach()
                    flow_ref = self.video.flow_estimator(ref, clip_in[:, t])
                flow = flow + losses.flow_loss(o["flow_hat"], flow_ref.detach(), self.weights.flow_eps) / n_p
            if gan:
                cond = self._d_condition(o)
                p_loss = p_loss + losses.gan_g_loss(self.discriminator(x_hat, cond)) / n_p
            fakes.append(
                (x, x_hat.detach(), self._d_condition(o) if self.discriminator is not None else None)
            )
        g_loss = wt.C * (lam * bpp + wt.C_D * dist + w_flow * flow)
        if gan:
            g_loss = g_loss + wt.C_P * p_loss

        def d_loss_fn():
            total = 0.0
            for x, x_hat, cond in fakes:
                total = total + losses.gan_d_loss(
                    self.discriminator(x, cond), self.discriminator(x_hat, cond)
                )
            return total / len(fakes)

        i_out = outs[0]
        applied = self._optimize(g_loss, d_loss_fn, bpp)
        logs = {
            "train/g_loss": g_loss.detach(),
            "train/bpp": bpp.detach(),
            "train/bpp_i": losses.bpp(i_out["likelihoods"], h * w).mean(),
            "train/psnr_i": psnr(i_out["x_hat"][..., :h, :w].detach(), clip[:, 0]),
            "train/distortion": dist.detach(),
            "train/mse": mse_sum,
            "train/psnr": psnr_sum,
            "train/unroll_t": float(len(outs)),
            "train/w_flow": w_flow,
            "train/gan_active": float(gan),
        }
        if self.lpips is not None:
            logs["train/lpips"] = lp_sum
        if w_flow > 0:
            logs["train/flow_loss"] = flow.detach()
        if gan:
            logs["train/p_loss"] = p_loss.detach()
        self.log_dict(logs, on_step=True, on_epoch=False)
        self.log("lambda_r", lam, prog_bar=True, on_step=True, on_epoch=False)
        self.log("bpp", bpp.detach(), prog_bar=True, on_step=True, on_epoch=False)
        if applied and self.log_images_every and self.gvc_step % self.log_images_every == 0:
            self._log_images(
                "train/reconstruction",
                [clip[:, -1], outs[-1]["x_hat"][..., :h, :w], outs[-1]["prediction"][..., :h, :w]],
            )
        return g_loss.detach()

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch, batch_idx):
        clip = self._clip(batch)
        h, w = clip.shape[-2:]
        outs = self.video.forward_clip(pad_to_multiple(clip, self.size_multiple), mode="round")
        n = clip.shape[0]
        p = outs[1:]
        bpp_p = torch.stack([losses.bpp(o["likelihoods"], h * w).mean() for o in p]).mean()
        psnr_p = torch.stack([psnr(o["x_hat"][..., :h, :w], clip[:, t + 1]) for t, o in enumerate(p)]).mean()
        mse_p = torch.stack(
            [F.mse_loss(o["x_hat"][..., :h, :w].clamp(0, 1), clip[:, t + 1]) for t, o in enumerate(p)]
        ).mean()
        self.log_dict(
            {
                "val/bpp": bpp_p,
                "val/psnr": psnr_p,
                "val/mse": mse_p,
                "val/bpp_i": losses.bpp(outs[0]["likelihoods"], h * w).mean(),
                "val/psnr_i": psnr(outs[0]["x_hat"][..., :h, :w], clip[:, 0]),
            },
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            batch_size=n,
        )
        if batch_idx == 0:
            self._log_images("val/reconstruction", [clip[:, -1], outs[-1]["x_hat"][..., :h, :w]])
