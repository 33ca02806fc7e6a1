"""Stage 1 [paper, HiFiC; docs/METHOD.md section 1.1]: the I-frame codec (E_I, G_I, hyperprior) and D_I on single frames.

G loss (gvc.objectives.IFrameObjective, HiFiC): C * (lambda_R * R + C_D * mse_scale * MSE) + C_P * G + w_lpips *
P, R = noisy-latent bpp of the batch (the loss term), G = non-saturating GAN loss of D_I(x_hat | y_hat), P = the
perceptual distance (LPIPS / ST-LPIPS) outside C. The rate controller reads bpp_q, the rounded-latent bpp (what
the file carries). D_I is conditioned on the quantized latent, detached in both steps (HiFiC stops the
gradient from D into the latent). Until `stage.warmup_steps` the GAN term and the D step are off (MSE+LPIPS
warm-up). One D step per G step, on the reconstruction of the same forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from gvc import losses
from gvc.codec.modelfile import class_path_of
from gvc.errors import ConfigError, required
from gvc.objectives import IFrameObjective
from gvc.training.base import GVCModule, pad_to_multiple, psnr
from gvc.training.speed import plain_copy

FRAME_SAMPLING = ("random", "first")


class IFrameModule(GVCModule):
    """Lightning module of stage 1.

    Args:
        codec: gvc.models.iframe.IFrameCodec (trained).
        discriminator: ConditionalDiscriminator over (frame, y_hat), or None (loss.gan false: no GAN at all).
        lpips: the perceptual loss module (gvc.losses.LPIPSLoss or STLPIPSLoss, frozen), None when
            loss.w_lpips == 0.
        rate_controller, loss, stage: see GVCModule.
    Batches: clips (B, T, 3, H, W) in [0, 1] (T >= 1); one frame per clip is used (stage.frame_sampling).
    """

    def __init__(
        self,
        codec: nn.Module,
        discriminator: nn.Module | None,
        lpips: nn.Module | None,
        rate_controller,
        loss: Mapping,
        stage: Mapping,
    ):
        super().__init__(rate_controller, loss, stage)
        self.codec = codec
        self.discriminator = discriminator if self.weights.gan else None
        if self.weights.gan and discriminator is None:
            raise ConfigError("loss.gan is true but no discriminator was given (model.discriminator_i)")
        if self.weights.w_lpips > 0 and lpips is None:
            raise ConfigError("loss.w_lpips > 0 needs an LPIPS module (gvc.losses.LPIPSLoss)")
        self.lpips = lpips if self.weights.w_lpips > 0 else None
        self.objective = IFrameObjective(self.weights, self.lpips)
        self.frame_sampling = str(required(self.stage_cfg, "frame_sampling", "stage"))
        if self.frame_sampling not in FRAME_SAMPLING:
            raise ConfigError(f"stage.frame_sampling={self.frame_sampling!r}: use one of {FRAME_SAMPLING}")
        self.size_multiple = int(getattr(codec, "size_multiple", 64))
        self.check_rate_levels(int(getattr(codec, "rate_levels", 0)))
        self._build_update()

    @classmethod
    def from_config(cls, model_cfg, instantiate, lpips, rate_controller, loss: Mapping, stage: Mapping):
        """Build the stage-1 models from model.iframe and (with loss.gan) model.discriminator_i."""
        codec = instantiate(model_cfg.iframe, _convert_="all")
        gan = bool(required(loss, "gan", "loss"))
        disc = instantiate(model_cfg.discriminator_i, _convert_="all") if gan else None
        return cls(codec, disc, lpips, rate_controller, loss, stage)

    # ------------------------------------------------------------------ parts
    def generator_parameters(self):
        return self.codec.named_parameters()

    def aux_loss(self) -> torch.Tensor:
        return self.codec.aux_loss()

    def export_codec(self) -> nn.Module:
        return plain_copy(self.codec)

    def export_spec(self) -> dict:
        return {
            "class_path": class_path_of(self.codec),
            "config": dict(self.codec.config),
            "prefix": "codec.",
        }

    # ------------------------------------------------------------------ data
    def _frames(self, batch) -> torch.Tensor:
        """(B, T, 3, H, W) clips or (B, 3, H, W) frames -> (B, 3, H, W): one frame per clip."""
        x = batch[0] if isinstance(batch, list | tuple) else batch
        if x.dim() == 4:
            return x
        if x.dim() != 5:
            raise ValueError(f"expected clips (B, T, 3, H, W) or frames (B, 3, H, W), got {tuple(x.shape)}")
        b, t = x.shape[:2]
        if t == 1 or self.frame_sampling == "first":
            return x[:, 0]
        idx = torch.randint(0, t, (b,), device=x.device)
        return x[torch.arange(b, device=x.device), idx]

    # ------------------------------------------------------------------ losses
    def forward(self, x: torch.Tensor, mode: str = "round", q=None) -> dict:
        """Codec forward on frames (B, 3, H, W) in [0, 1] of any size (padded to the codec's multiple inside) at
        quality level q (variable-rate codecs); returns dict(x_hat (B,3,H,W) unclamped, bpp (B,), y_hat)."""
        h, w = x.shape[-2:]
        out = self.codec(pad_to_multiple(x, self.size_multiple), mode=mode, q=q)
        return {
            "x_hat": out.x_hat[..., :h, :w],
            "bpp": losses.bpp(out.likelihoods, h * w),
            "y_hat": out.y_hat,
        }

    def training_step(self, batch, batch_idx):
        x = self._frames(batch)
        h, w = x.shape[-2:]
        mode, qparams = self.quantization()
        self._set_d_trainable(False)
        levels = self.draw_levels(x.shape[0], x.device)
        q = None if levels is None else levels.float()
        out = self.codec(pad_to_multiple(x, self.size_multiple), mode=mode, q=q, **qparams).cropped(h, w)
        lam = self.rate_weight(levels)
        gan = self.gan_active
        terms = self.objective(x, out, lam, self.discriminator if gan else None)
        g_loss = terms.loss

        def d_loss_fn():
            return self.objective.discriminator_loss(self.discriminator, x, out)

        lam = float(self.rate_controller.lambda_r)  # (the levels' geometric mean for a variable-rate codec)
        applied = self._update(g_loss, d_loss_fn, self.measured_rate(terms, levels)).applied
        logs = {
            "train/g_loss": g_loss.detach(),
            "train/bpp": terms.bpp.detach(),
            "train/bpp_noisy": terms.bpp.detach(),
            "train/bpp_q": terms.bpp_q,
            "train/mse": terms.mse.detach(),
            "train/psnr": terms.psnr,
            "train/gan_active": float(gan),
        }
        if self.lpips is not None:
            logs["train/lpips"] = terms.perceptual.detach()
        if gan:
            logs["train/p_loss"] = terms.p_loss.detach()
        self.log_dict(logs, on_step=True, on_epoch=False, prog_bar=False)
        self.log("lambda_r", lam, prog_bar=True, on_step=True, on_epoch=False)
        self.log("bpp_q", terms.bpp_q, prog_bar=True, on_step=True, on_epoch=False)
        if applied and self.log_images_every and self.gvc_step % self.log_images_every == 0:
            self._log_images("train/reconstruction", [x, out.x_hat])
        return g_loss.detach()

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, list | tuple) else batch
        if x.dim() == 5:
            x = x.flatten(0, 1)
        out = self(x, mode="round", q=self.validation_levels(x.shape[0], x.device))
        x_hat = out["x_hat"]
        self.log_dict(
            {
                "val/bpp": out["bpp"].mean(),
                "val/psnr": psnr(x_hat, x),
                "val/mse": F.mse_loss(x_hat.clamp(0, 1), x),
            },
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            batch_size=x.shape[0],
        )
        if batch_idx == 0:
            self._log_images("val/reconstruction", [x, x_hat])
