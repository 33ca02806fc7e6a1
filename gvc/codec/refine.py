"""Encode-time latent refinement (`gvc encode --refine-steps N`): per frame, a few gradient steps on the latents.

Starting from the encoder's latents, each frame's latents (y of the I-frame codec; the flow and residual y of
a P-frame) are moved by N Adam steps against the frame's rate + distortion objective of training with the GAN
term off (gvc.objectives.FrameObjective: C * (lambda_R * R + C_D * mse_scale * MSE) + w_lpips * P), with
lambda_R, the loss weights and the perceptual loss that the model file's training record names (the I-frame
stage's for I-frames, the P-frame stage's for P-frames). Only the latents change, never the weights: the
pipeline runs with the decoder's reference frame (the previous decoded frame), quantized straight-through as
the file will be, so the decoder needs nothing new and the bitstream format does not change. The hyper-latent
z follows from the refined y (z = h_a(y)).

The iterate with the lowest objective among the N + 1 visited (the encoder's latents included) is coded, so
refinement never raises a frame's objective as measured; the per-frame report gives bits (the rounded latents'
-log2 likelihoods), PSNR (RGB, [0, 1] frames), the perceptual term and the objective before and after.
Deterministic: no noise, no random crop, Adam on fixed inputs (the coder's deterministic settings hold).
Cost: N forward + backward passes of the frame pipeline per frame (plus the perceptual network when on).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from gvc.errors import GVCError, MissingWeightsError
from gvc.losses import perceptual_from_spec
from gvc.models.latents import FrameOut, RefineLatents
from gvc.objectives import FrameObjective, LossWeights

#: Adam step size on the latents (latent units; a rounding bin is 1 wide) [ours]
DEFAULT_LR = 0.1
#: the metrics of a frame that the report gives before and after refinement
REPORTED = ("bits", "psnr", "mse", "perceptual", "loss")


@dataclass
class FrameTarget:
    """What a frame type's latents are refined against: the objective and its lambda_R."""

    objective: FrameObjective
    lambda_r: float


def targets_from_record(record: Mapping, video: bool, perceptual: bool = True) -> dict[str, FrameTarget]:
    """{"I": FrameTarget, "P": FrameTarget} from a model file's training record (gvc.codec.modelfile).

    An intra-only model's record is its stage-1 record (used for every frame); a video model's is the stage-2
    record (P-frames) with the stage-1 record under "iframe" (I-frames; left out when absent: I-frames are then
    coded unrefined). perceptual=False drops the perceptual term (rate + MSE only). GVCError when the record
    lacks what refinement needs; MissingWeightsError (a GVCError) when the perceptual loss' weights are absent.
    """
    if not record or "objective" not in record:
        raise GVCError(
            "the model file has no training record (lambda_R and the loss weights refinement needs): re-export "
            "it from its training checkpoint with this gvc (`gvc export CKPT -o MODEL.gvcm`)"
        )
    cache: dict[str, nn.Module] = {}
    out = {}
    if video:
        out["P"] = _target(record, perceptual, cache, "P-frame")
        if record.get("iframe"):
            out["I"] = _target(record["iframe"], perceptual, cache, "I-frame")
    else:
        out["I"] = _target(record, perceptual, cache, "I-frame")
    return out


def _target(record: Mapping, perceptual: bool, cache: dict, what: str) -> FrameTarget:
    obj = record.get("objective") or {}
    try:
        weights = dataclasses.replace(LossWeights.from_config(obj["loss"]), perceptual_crop=None)
        lam = float(obj["lambda_R"])
    except (KeyError, TypeError, ValueError, GVCError) as e:
        raise GVCError(f"the model file's {what} training record is incomplete ({e}); re-export it") from e
    if not math.isfinite(lam) or lam <= 0:
        raise GVCError(f"the model file's {what} training record has lambda_R={lam}: cannot refine with it")
    module = None
    spec = obj.get("perceptual")
    if perceptual and weights.w_lpips > 0 and spec:
        key = repr(sorted(spec.items()))
        if key not in cache:
            try:
                cache[key] = perceptual_from_spec(spec)
            except MissingWeightsError:
                raise
            except ValueError as e:
                raise GVCError(f"{e}; refine without it: --refine-no-perceptual") from e
        module = cache[key]
    if module is None:
        weights = dataclasses.replace(weights, w_lpips=0.0)
    return FrameTarget(FrameObjective(weights, module), lam)


@dataclass
class FrameRefinement:
    """One frame's refinement: steps taken, the chosen iterate (0 = the encoder's latents), and REPORTED
    metrics before (the encoder's latents) and after (the chosen iterate)."""

    steps: int
    best_step: int
    before: dict
    after: dict


class LatentRefiner:
    """Refine a frame's latents: `refine(run, x)` with run(latents) coding the frame once with a LatentCoding
    (the coder's pipeline call on a copy of its state) and x (1, 3, H, W) the source frame in [0, 1] (unpadded).

    Returns ({name: refined y}, FrameRefinement) or (None, None) when the frame type has no target."""

    def __init__(self, steps: int, targets: Mapping[str, FrameTarget], lr: float = DEFAULT_LR):
        if int(steps) < 0:
            raise GVCError(f"--refine-steps must be >= 0, got {steps}")
        if not (lr > 0 and math.isfinite(lr)):
            raise GVCError(f"--refine-lr must be a positive number, got {lr}")
        self.steps = int(steps)
        self.lr = float(lr)
        self.targets = dict(targets)

    def _measure(self, target: FrameTarget, x: torch.Tensor, out: FrameOut) -> tuple[torch.Tensor, dict]:
        h, w = x.shape[-2:]
        view = dict(out)
        view["x_hat"] = out["x_hat"][..., :h, :w].clamp(0.0, 1.0)  # the decoder's frame
        terms = target.objective(x, view, target.lambda_r)
        metrics = {
            "bits": out.estimated_bits(),
            "psnr": float(terms["psnr"]),
            "mse": float(terms["mse"].detach()),
            "perceptual": float(terms["perceptual"].detach()),
            "loss": float(terms["loss"].detach()),
        }
        return terms["loss"], metrics

    def refine(self, run: Callable, x: torch.Tensor):
        latents = RefineLatents()
        with torch.enable_grad():
            out = run(latents)
            target = self.targets.get(out["frame_type"])
            if target is None or self.steps == 0:
                return None, None
            params = list(latents.y.values())
            opt = torch.optim.Adam(params, lr=self.lr)
            best_loss, best_step, best, before, after = math.inf, 0, None, None, None
            for k in range(self.steps + 1):
                if k > 0:
                    out = run(latents)
                loss, metrics = self._measure(target, x, out)
                if before is None:
                    before = metrics
                if not math.isfinite(metrics["loss"]):
                    break
                if metrics["loss"] < best_loss:
                    best_loss, best_step, after = metrics["loss"], k, metrics
                    best = {n: y.detach().clone() for n, y in latents.y.items()}
                if k == self.steps:
                    break
                grads = torch.autograd.grad(loss, params)
                for p, g in zip(params, grads, strict=True):
                    p.grad = g
                opt.step()
        if best is None:  # non-finite from the start: code the encoder's latents
            return None, None
        return best, FrameRefinement(self.steps, best_step, before, after)


__all__ = ["DEFAULT_LR", "FrameRefinement", "FrameTarget", "LatentRefiner", "targets_from_record"]
