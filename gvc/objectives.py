"""Training objectives of both stages, apart from Lightning: frame outputs (+ D) in, `ObjectiveTerms` out.

HiFiC's generator loss [HiFiC, verified in the reference code; docs/METHOD.md section 2.6], per frame:

    L_G = C * (lambda_R * R + C_D * mse_scale * MSE) + C_P * G + w_lpips * P

R: bpp of the noisy (training-mode) latents, the loss term; MSE on [0, 1] frames (mse_scale = 255^2 puts it on
HiFiC's [0, 255] scale); G: the non-saturating generator GAN loss; P: the perceptual distance (LPIPS, or
ST-LPIPS offline), which sits OUTSIDE C with weight 1. lambda_R comes from the rate controller and multiplies R
(HiFiC writes R / lambda; our lambda_R is its reciprocal). The rate controller reads `bpp_q`: the bpp of the
rounded latents, i.e. what the file will carry (no gradient). The P-frame objective averages every term over
the P-frames of the unrolled clip and adds C * w_flow * L_flow (Charbonnier against the frozen flow model).

Frames are (B, 3, H, W) in [0, 1] (cropped back to the source size); rates in bits per pixel of that size.
The Lightning modules (gvc.training) run optimizers, schedules and the controller; benchmarks and tests call
these same objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn

from gvc import losses
from gvc.errors import ConfigError
from gvc.models.latents import FrameOut


@dataclass(frozen=True)
class LossWeights:
    """conf/loss/*.yaml: C, C_D, C_P, w_lpips, mse_scale [HiFiC], gan (false: no GAN term, no D), flow_eps [ours],
    perceptual_crop [ours] (null: the perceptual term sees the whole frame; s: one random s x s window per frame,
    the same window for x_hat and x: a cheaper estimate for CPU runs).

    No defaults here: the yaml is the one source of these values (`from_config`)."""

    C: float
    C_D: float
    C_P: float
    w_lpips: float
    mse_scale: float
    gan: bool
    flow_eps: float
    perceptual_crop: int | None

    @classmethod
    def from_config(cls, cfg: Mapping) -> LossWeights:
        """From a conf/loss mapping; every field is required (ConfigError naming the missing `loss.KEY`)."""
        values = {}
        for f in fields(cls):
            if f.name not in cfg:
                raise ConfigError(f"loss.{f.name} is missing: conf/loss/*.yaml sets every loss weight")
            v = cfg[f.name]
            if f.name == "perceptual_crop":
                values[f.name] = None if v is None else int(v)
            else:
                values[f.name] = bool(v) if f.type in (bool, "bool") else float(v)
        return cls(**values)


@dataclass(frozen=True)
class ObjectiveTerms:
    """What an objective returns (frozen: nothing changes it after return). Scalar tensors (0-d, float32).

    loss: the generator loss to minimise (with gradient). bpp: rate of the training-mode latents, bits per pixel
    of the source size (with gradient); bpp_q: of the rounded latents (no gradient: what the rate controller
    reads and the file carries); mse: on the [0, 1] scale; psnr: dB (no gradient); perceptual: the perceptual
    distance (0 when off). p_loss: the generator GAN term (None without a discriminator). P-frame objective
    only (None otherwise, or when the frames lack them): flow_loss (Charbonnier vs the frozen flow), flow_epe
    (pixels), bpp_flow / bpp_flow_q (the flow latent's share of bpp / bpp_q), sigma (mean blur std, pixels).
    bpp_q_items: bpp_q per batch item (B,) (what a variable-rate controller reads per level).
    Averages over the P-frames for the P-frame objective.

    lambda_R, wherever an objective takes it, is a number or a (B,) tensor (a variable-rate batch: each item's
    level's lambda_R); the rate term is then the batch mean of lambda_R(i) * R(i).
    """

    loss: torch.Tensor
    bpp: torch.Tensor
    bpp_q: torch.Tensor
    mse: torch.Tensor
    psnr: torch.Tensor
    perceptual: torch.Tensor
    p_loss: torch.Tensor | None = None
    flow_loss: torch.Tensor | None = None
    flow_epe: torch.Tensor | None = None
    bpp_flow: torch.Tensor | None = None
    bpp_flow_q: torch.Tensor | None = None
    sigma: torch.Tensor | None = None
    bpp_q_items: torch.Tensor | None = None

    @classmethod
    def of(cls, terms: Mapping[str, torch.Tensor]) -> ObjectiveTerms:
        """From an objective's working dict; its per-item rates with gradient (bpp_items, bpp_flow_items, used
        for the rate term) are left out."""
        return cls(**{k: v for k, v in terms.items() if k not in ("bpp_items", "bpp_flow_items")})


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over items of 10 log10(1 / MSE) for frames in [0, 1] (x_hat clamped), dB; no gradient."""
    with torch.no_grad():
        mse = (x_hat.detach().float().clamp(0, 1) - x.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
        return (10.0 * torch.log10(1.0 / mse)).mean()


def flow_epe(flow_hat: torch.Tensor, flow_ref: torch.Tensor) -> torch.Tensor:
    """Mean end-point error |flow_hat - flow_ref|_2 over pixels and items (pixels), no gradient."""
    with torch.no_grad():
        return (flow_hat.detach().float() - flow_ref.detach().float()).pow(2).sum(1).sqrt().mean()


def weighted_rate(lambda_r: float | torch.Tensor, bpp_items: torch.Tensor) -> torch.Tensor:
    """Batch mean of lambda_R * R per item: lambda_r a number or (B,) (each item's level's), bpp_items (B,)."""
    if isinstance(lambda_r, torch.Tensor):
        return (lambda_r.to(bpp_items.device, bpp_items.dtype) * bpp_items).mean()
    return lambda_r * bpp_items.mean()


class _FrameTerms(nn.Module):
    """Distortion and perceptual terms shared by both objectives."""

    def __init__(self, weights: LossWeights, perceptual: nn.Module | None):
        super().__init__()
        self.weights = weights
        self.perceptual = perceptual if weights.w_lpips > 0 else None

    def frame_terms(self, x: torch.Tensor, x_hat: torch.Tensor, likelihoods, likelihoods_q) -> dict:
        """A working dict of one frame's terms (the objectives' own accumulator; they return ObjectiveTerms):
        bpp (noisy, with gradient), bpp_q (rounded, none), mse ([0,1] scale), psnr, perceptual (0 when off)."""
        n = x.shape[-2] * x.shape[-1]
        bpp_items = losses.bpp(likelihoods, n)
        bpp_q_items = losses.bpp(likelihoods_q, n).detach()
        terms = {
            "bpp": bpp_items.mean(),
            "bpp_items": bpp_items,
            "bpp_q": bpp_q_items.mean(),
            "bpp_q_items": bpp_q_items,
            "mse": losses.mse(x_hat.float(), x.float()),
            "psnr": psnr(x_hat, x),
        }
        if self.perceptual is None:
            terms["perceptual"] = x_hat.new_zeros((), dtype=torch.float32)
        else:
            terms["perceptual"] = self.perceptual(*self._window(x_hat, x))
        return terms

    def _window(self, x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.weights.perceptual_crop
        h, w = x.shape[-2:]
        if not s or (s >= h and s >= w):
            return x_hat, x
        sh, sw = min(s, h), min(s, w)
        top = int(torch.randint(0, h - sh + 1, ()))
        left = int(torch.randint(0, w - sw + 1, ()))
        return x_hat[..., top : top + sh, left : left + sw], x[..., top : top + sh, left : left + sw]

    def combine(
        self, t: Mapping[str, torch.Tensor], lambda_r: float | torch.Tensor, gan_term, flow_term=None
    ) -> torch.Tensor:
        """C * (lambda_R * R + C_D * mse_scale * MSE [+ w_flow L_flow]) + C_P * G + w_lpips * P; lambda_R * R is
        the batch mean of lambda_R(i) * R(i) when lambda_R is a (B,) tensor."""
        w = self.weights
        inner = weighted_rate(lambda_r, t["bpp_items"]) + w.C_D * w.mse_scale * t["mse"]
        if flow_term is not None:
            inner = inner + flow_term
        total = w.C * inner + w.w_lpips * t["perceptual"]
        if gan_term is not None:
            total = total + w.C_P * gan_term
        return total


class FrameObjective(_FrameTerms):
    """One coded frame's rate-distortion objective with the GAN term off, what encode-time latent refinement
    (gvc.codec.refine) minimises: C * (lambda_R * R + C_D * mse_scale * MSE) + w_lpips * P.

    forward(x, out, lambda_r) -> ObjectiveTerms(loss, bpp, bpp_q, mse, perceptual, psnr): x (B, 3, H, W) in
    [0, 1]; out a FrameOut (I or P) with x_hat cropped to x's size, likelihoods (R: with gradient) and
    likelihoods_q.
    """

    def forward(self, x: torch.Tensor, out: FrameOut, lambda_r: float) -> ObjectiveTerms:
        t = self.frame_terms(x, out.x_hat, out.likelihoods, out.likelihoods_q)
        t["loss"] = self.combine(t, lambda_r, None)
        return ObjectiveTerms.of(t)


class IFrameObjective(_FrameTerms):
    """Stage-1 generator and discriminator losses.

    forward(x, out, lambda_r, discriminator=None) -> ObjectiveTerms(loss, bpp, bpp_q, mse, perceptual, psnr,
    p_loss): x (B, 3, H, W) in [0, 1]; out: the I-frame codec's FrameOut with x_hat cropped to x's size,
    likelihoods, likelihoods_q, y_hat. With a discriminator (GAN active) the generator GAN term
    D(x_hat | sg(y_hat)) is added (p_loss; None without one).
    """

    def forward(
        self, x: torch.Tensor, out: FrameOut, lambda_r: float, discriminator: nn.Module | None = None
    ) -> ObjectiveTerms:
        t = self.frame_terms(x, out.x_hat, out.likelihoods, out.likelihoods_q)
        gan = None
        if discriminator is not None:
            gan = losses.gan_g_loss(discriminator(out.x_hat, out.y_hat.detach()))
            t["p_loss"] = gan
        t["loss"] = self.combine(t, lambda_r, gan)
        return ObjectiveTerms.of(t)

    @staticmethod
    def discriminator_loss(discriminator: nn.Module, x: torch.Tensor, out: FrameOut) -> torch.Tensor:
        """Non-saturating D loss on (x, sg(x_hat)), both conditioned on sg(y_hat)."""
        cond = out.y_hat.detach()
        return losses.gan_d_loss(discriminator(x, cond), discriminator(out.x_hat.detach(), cond))


class PFrameObjective(_FrameTerms):
    """Stage-2 losses over an unrolled clip, averaged over its P-frames (frame 0, the frozen I-frame, is out).

    forward(clip, outs, lambda_r, w_flow=0, discriminator=None) -> ObjectiveTerms(loss, bpp, bpp_q, mse,
    perceptual, psnr, flow_loss, flow_epe, p_loss, ...): clip (B, T, 3, H, W) in [0, 1]; outs: T FrameOuts
    (VideoCodec.forward_clip) with x_hat cropped to H x W; P-frames carry likelihoods,
    likelihoods_q, flow_hat and flow_ref (pixels; None without the flow input: then no flow loss or EPE),
    d_latent (D_P's condition, None in the flow warm-up). conditional_d False gives D_P a zero latent.
    Also returned, for logging: bpp_flow_q (the flow latent's rounded bpp) and sigma (mean blur std, pixels);
    a term the frames do not give (no flow latent, no flow_ref, no discriminator) is None.

    flow_relative (stage.flow_loss.relative): the flow term is stated relative to the distortion term,
    w_flow * sg(D / L_flow) * L_flow with D = C_D * mse_scale * MSE, so its value is w_flow times the distortion
    term's whatever the quality (a fixed weight beside D = 770 units at 18 dB gave the flow term ~1% of the
    MSE term's gradient on the decoded flow); false: w_flow * L_flow.

    flow_rate_lambda (stage.flow_loss.rate_lambda): the weight of the flow latent's rate, in place of the
    controller's lambda_R for those bits (None: lambda_R for every bit). The loss is then
    C * (lambda_R * R_res + flow_rate_lambda * R_flow + ...); the controller still reads the total rounded rate.

    flow_only (stage 2's flow pre-training phase, stage.flow_pretrain_steps; docs/METHOD.md section 3.6): the
    flow codec as an autoencoder of the reference flow, loss = C * (lambda_F * R_flow + flow term) with the flow
    term above (relative: its value is w_flow times C_D * mse_scale * MSE of the frames' x_hat, the prediction
    when the residual branch is off) and lambda_F = flow_rate_lambda (None: lambda_R); no distortion, perceptual
    or GAN term, so only the flow codec has a gradient.
    """

    def __init__(
        self,
        weights: LossWeights,
        perceptual: nn.Module | None,
        *,
        conditional_d: bool,
        flow_relative: bool,
        flow_rate_lambda: float | None,
    ):
        super().__init__(weights, perceptual)
        self.conditional_d = bool(conditional_d)
        self.flow_relative = bool(flow_relative)
        self.flow_rate_lambda = None if flow_rate_lambda is None else float(flow_rate_lambda)

    def d_condition(self, out: FrameOut) -> torch.Tensor:
        latent = out.d_latent.detach()
        return latent if self.conditional_d else torch.zeros_like(latent)

    def forward(
        self,
        clip: torch.Tensor,
        outs: Sequence[FrameOut],
        lambda_r: float,
        w_flow: float = 0.0,
        discriminator: nn.Module | None = None,
        flow_only: bool = False,
    ) -> ObjectiveTerms:
        p_frames = list(range(1, len(outs)))
        if not p_frames:
            raise ValueError("the P-frame objective needs clips of T >= 2 frames")
        n = float(len(p_frames))
        acc: dict[str, torch.Tensor] = {}
        flow_sum = gan_sum = epe_sum = None
        for t in p_frames:
            o = outs[t]
            x = clip[:, t]
            terms = self.frame_terms(x, o.x_hat, o.likelihoods, o.likelihoods_q)
            flow_q = {k: v for k, v in o.likelihoods_q.items() if k.startswith("flow_")}
            if flow_q:
                terms["bpp_flow_q"] = losses.bpp(flow_q, x.shape[-2] * x.shape[-1]).mean().detach()
            flow_lik = {k: v for k, v in o.likelihoods.items() if k.startswith("flow_")}
            if flow_lik:
                terms["bpp_flow_items"] = losses.bpp(flow_lik, x.shape[-2] * x.shape[-1])
                terms["bpp_flow"] = terms["bpp_flow_items"].mean()
            if o.sigma is not None:
                terms["sigma"] = o.sigma.detach().float().mean()
            for k, v in terms.items():
                acc[k] = acc[k] + v / n if k in acc else v / n
            flow_ref = o.flow_ref
            if flow_ref is not None:
                fl = losses.flow_loss(o.flow_hat, flow_ref.detach(), self.weights.flow_eps) / n
                flow_sum = fl if flow_sum is None else flow_sum + fl
                epe = flow_epe(o.flow_hat, flow_ref) / n
                epe_sum = epe if epe_sum is None else epe_sum + epe
            if discriminator is not None:
                g = losses.gan_g_loss(discriminator(o.x_hat, self.d_condition(o))) / n
                gan_sum = g if gan_sum is None else gan_sum + g
        flow_term = None
        if flow_sum is not None:
            acc["flow_loss"] = flow_sum
            acc["flow_epe"] = epe_sum
            if w_flow > 0:
                flow_term = w_flow * flow_sum
                if self.flow_relative:
                    distortion = self.weights.C_D * self.weights.mse_scale * acc["mse"].detach()
                    flow_term = flow_term * (distortion / flow_sum.detach().clamp_min(1e-6))
        if gan_sum is not None:
            acc["p_loss"] = gan_sum
        if flow_only:
            acc["loss"] = self.flow_autoencoder_loss(acc, lambda_r, flow_term)
            return ObjectiveTerms.of(acc)
        acc["loss"] = self.combine(acc, lambda_r, gan_sum, flow_term)
        if self.flow_rate_lambda is not None and "bpp_flow" in acc:  # the flow bits at their own weight
            items = acc["bpp_flow_items"]
            price = self.flow_rate_lambda * acc["bpp_flow"] - weighted_rate(lambda_r, items)
            acc["loss"] = acc["loss"] + self.weights.C * price
        return ObjectiveTerms.of(acc)

    def flow_autoencoder_loss(
        self, acc: Mapping[str, torch.Tensor], lambda_r: float | torch.Tensor, flow_term: torch.Tensor | None
    ) -> torch.Tensor:
        """C * (lambda_F * R_flow + flow_term): the flow pre-training phase's loss (`forward(flow_only=True)`);
        lambda_F = flow_rate_lambda, or lambda_r (a number or (B,)) when it is None."""
        if flow_term is None or "bpp_flow_items" not in acc:
            raise ValueError(
                "the flow pre-training objective needs P-frames with a flow latent and flow_ref, and w_flow > 0"
            )
        price = lambda_r if self.flow_rate_lambda is None else self.flow_rate_lambda
        return self.weights.C * (weighted_rate(price, acc["bpp_flow_items"]) + flow_term)

    def discriminator_loss(self, discriminator: nn.Module, clip: torch.Tensor, outs: Sequence[FrameOut]):
        """Mean over P-frames of the non-saturating D loss on (x_t, sg(x_hat_t)) with the frame's condition."""
        total = None
        for t in range(1, len(outs)):
            cond = self.d_condition(outs[t])
            d = losses.gan_d_loss(
                discriminator(clip[:, t], cond), discriminator(outs[t].x_hat.detach(), cond)
            )
            total = d if total is None else total + d
        return total / (len(outs) - 1)


__all__ = [
    "FrameObjective",
    "IFrameObjective",
    "LossWeights",
    "ObjectiveTerms",
    "PFrameObjective",
    "flow_epe",
    "psnr",
    "weighted_rate",
]
