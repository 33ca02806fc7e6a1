"""Encode-time latent refinement (`gvc encode --refine-steps N`): per frame, a few gradient steps on the latents.

Starting from the encoder's latents, each frame's latents (y of the I-frame codec; the flow and residual y of
a P-frame) are moved by N Adam steps against the frame's rate + distortion objective of training with the GAN
term off (gvc.objectives.FrameObjective: C * (lambda_R * R + C_D * mse_scale * MSE) + w_lpips * P), with
lambda_R, the loss weights and the perceptual loss that the model file's training record names (the I-frame
stage's for I-frames, the P-frame stage's for P-frames). Only the latents change, never the weights: the
pipeline runs with the decoder's reference frame (the previous decoded frame), quantized straight-through as
the file will be, so the decoder needs nothing new and the bitstream format does not change. The hyper-latent
z follows from the refined y (z = h_a(y)).

Rate: "objective" (default) keeps the model's lambda_R, so refinement spends or saves bits as the objective
says (a lambda_R that the rate controller left at a bound makes that a large change); "hold" keeps each frame
within the bits of the encoder's latents (lambda_R raised after an overspend; the chosen iterate is the least
distorted one that fits), a pure quality gain at the same rate.

The iterate with the lowest objective (hold: lowest distortion within the bits) among the N + 1 visited (the
encoder's latents included) is coded, so refinement never makes a frame worse by that measure; the per-frame
report gives bits (the rounded latents' -log2 likelihoods), PSNR (RGB, [0, 1] frames), the perceptual term,
the distortion and the objective before and after.
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

from gvc.errors import GVCError
from gvc.losses import perceptual_from_spec
from gvc.models.latents import FrameOut, RefineLatents
from gvc.objectives import FrameObjective, LossWeights, ObjectiveTerms

#: Adam step size on the latents (latent units; a rounding bin is 1 wide) [ours]
DEFAULT_LR = 0.1
#: rate="hold": gain of the per-frame lambda_R update on the relative overspend (bits / bits before - 1) [ours]
RATE_GAIN = 10.0
#: rate="hold": the range the per-frame lambda_R stays in [ours]
LAMBDA_MIN, LAMBDA_MAX = 1.0e-4, 1.0e5
RATE_MODES = ("objective", "hold")
#: the metrics of a frame that the report gives before and after refinement (distortion: the objective's
#: C * C_D * 255^2 * MSE + w_lpips * P; loss: distortion + C * lambda_R * bpp with the model's lambda_R)
REPORTED = ("bits", "psnr", "mse", "perceptual", "distortion", "loss")


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
            try:  # MissingWeightsError (absent weights) passes through: it names the file to provide
                cache[key] = perceptual_from_spec(spec)
            except ValueError as e:
                raise GVCError(f"{e}; refine without it: --refine-no-perceptual") from e
        module = cache[key]
    if module is None:
        weights = dataclasses.replace(weights, w_lpips=0.0)
    return FrameTarget(FrameObjective(weights, module), lam)


def _held_lambda(lam: float, bits: float, bits_before: float) -> float:
    """rate="hold": lambda_R * exp(RATE_GAIN * (bits / bits_before - 1)), kept in [LAMBDA_MIN, LAMBDA_MAX]."""
    ratio = bits / max(bits_before, 1.0)
    return min(max(lam * math.exp(RATE_GAIN * (ratio - 1.0)), LAMBDA_MIN), LAMBDA_MAX)


@dataclass
class FrameRefinement:
    """One frame's refinement: steps taken, the chosen iterate (0 = the encoder's latents), REPORTED metrics
    before (the encoder's latents) and after (the chosen iterate), and the lambda_R of the last step (the
    model's own, or the one `rate="hold"` arrived at)."""

    steps: int
    best_step: int
    before: dict
    after: dict
    lambda_r: float


class LatentRefiner:
    """Refine a frame's latents: `refine(run, x)` with run(latents) coding the frame once with a LatentCoding
    (the coder's pipeline call on a copy of its state) and x (1, 3, H, W) the source frame in [0, 1] (unpadded).

    rate: "objective" (the objective with the model's lambda_R: refinement may spend or save bits, whatever
    lowers it; the chosen iterate has the lowest objective) or "hold" (the frame may not cost more bits than the
    encoder's latents: lambda_R starts at least at the value whose plain gradient step leaves the rate unchanged
    to first order (-<grad D, grad R> / |grad R|^2) and follows `_held_lambda` after every step, up after an
    overspend and down after a saving; a step that overspends is undone, the latents go back to the best
    iterate and the step size halves; the chosen iterate is the least distorted one within the bits of the
    encoder's latents). Returns ({name: refined y}, FrameRefinement) or (None, None) when the frame type has
    no target."""

    def __init__(
        self,
        steps: int,
        targets: Mapping[str, FrameTarget],
        lr: float = DEFAULT_LR,
        rate: str = "objective",
    ):
        if int(steps) < 0:
            raise GVCError(f"--refine-steps must be >= 0, got {steps}")
        if not (lr > 0 and math.isfinite(lr)):
            raise GVCError(f"--refine-lr must be a positive number, got {lr}")
        if rate not in RATE_MODES:
            raise GVCError(f"--refine-rate {rate!r}: use one of {', '.join(RATE_MODES)}")
        self.steps = int(steps)
        self.lr = float(lr)
        self.rate = rate
        self.targets = dict(targets)

    @staticmethod
    def _measure(
        target: FrameTarget, x: torch.Tensor, out: FrameOut, lam: float
    ) -> tuple[ObjectiveTerms, torch.Tensor, dict]:
        """(the objective's terms at lambda_R = lam, with gradient; C * bpp, d loss / d lambda_R (with gradient);
        the REPORTED metrics, whose loss is at the model's lambda_R). x (1, 3, H, W) in [0, 1]; out's x_hat is
        the padded frame, cropped here to x's size and clamped to [0, 1] (the decoder's frame)."""
        h, w = x.shape[-2:]
        terms = target.objective(x, out.replace(x_hat=out.x_hat[..., :h, :w].clamp(0.0, 1.0)), lam)
        c_bpp_t = target.objective.weights.C * terms.bpp
        c_bpp = float(c_bpp_t.detach())
        distortion = float(terms.loss.detach()) - lam * c_bpp  # the objective without its rate term
        metrics = {
            "bits": out.estimated_bits(),
            "psnr": float(terms.psnr),
            "mse": float(terms.mse.detach()),
            "perceptual": float(terms.perceptual.detach()),
            "distortion": distortion,
            "loss": distortion + target.lambda_r * c_bpp,
        }
        return terms, c_bpp_t, metrics

    def refine(self, run: Callable, x: torch.Tensor):
        latents = RefineLatents()
        hold = self.rate == "hold"
        with torch.enable_grad():
            out = run(latents)
            target = self.targets.get(out.frame_type)
            if target is None or self.steps == 0:
                return None, None
            params = list(latents.y.values())
            lr = self.lr
            opt = torch.optim.Adam(params, lr=lr)
            lam = target.lambda_r
            best_crit, best_step, best, before, after = math.inf, 0, None, None, None
            for k in range(self.steps + 1):
                if k > 0:
                    out = run(latents)
                terms, c_bpp, metrics = self._measure(target, x, out, lam)
                loss = terms.loss
                if before is None:
                    before = metrics
                if not math.isfinite(metrics["loss"]) or not math.isfinite(float(loss.detach())):
                    break
                crit = metrics["distortion"] if hold else metrics["loss"]
                feasible = not hold or metrics["bits"] <= before["bits"]
                if feasible and crit < best_crit:
                    best_crit, best_step, after = crit, k, metrics
                    best = {n: y.detach().clone() for n, y in latents.y.items()}
                if k == self.steps:
                    break
                if hold and not feasible:  # back to the best iterate, a larger lambda_R, half the step
                    with torch.no_grad():
                        for n, y in latents.y.items():
                            y.copy_(best[n])
                    lam = _held_lambda(lam, metrics["bits"], before["bits"])
                    lr = lr * 0.5
                    opt = torch.optim.Adam(params, lr=lr)
                    continue  # the next pass measures the restored latents
                if hold and k == 0:  # start at least at the lambda_R whose gradient step is rate-neutral
                    g_loss = torch.autograd.grad(loss, params, retain_graph=True)
                    g_rate = torch.autograd.grad(c_bpp, params)
                    g_dist = [a - lam * b for a, b in zip(g_loss, g_rate, strict=True)]
                    dot = sum(float((a * b).sum()) for a, b in zip(g_dist, g_rate, strict=True))
                    norm2 = sum(float((b * b).sum()) for b in g_rate)
                    lam = min(max(lam, -dot / norm2 if norm2 > 0 else lam, LAMBDA_MIN), LAMBDA_MAX)
                    grads = [a + lam * b for a, b in zip(g_dist, g_rate, strict=True)]
                elif hold:  # lambda_R up after an overspend, down after a saving; this step already uses it
                    new_lam = _held_lambda(lam, metrics["bits"], before["bits"])
                    grads = torch.autograd.grad(loss + (new_lam - lam) * c_bpp, params)
                    lam = new_lam
                else:
                    grads = torch.autograd.grad(loss, params)
                for p, g in zip(params, grads, strict=True):
                    p.grad = g
                opt.step()
        if best is None:  # non-finite from the start: code the encoder's latents
            return None, None
        return best, FrameRefinement(self.steps, best_step, before, after, float(lam))


__all__ = [
    "DEFAULT_LR",
    "RATE_MODES",
    "FrameRefinement",
    "FrameTarget",
    "LatentRefiner",
    "targets_from_record",
]
