"""VideoCodec: low-delay I-then-P coding with a frozen I-frame codec (SPEC sections 1 and 3).

Frame 0 of a clip (or of a GOP) is coded by the I-frame codec; every later frame is a P-frame predicted from the
previous reconstruction (clamped to [0, 1], as the decoder has it). The frozen flow estimator runs on the encoder
side only; it is not part of the weights (a decoder never builds it), so `config["flow"]` is only a spec.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gvc.models.flow import FlowEstimator, build_flow_estimator, flow_spec
from gvc.models.iframe import IFrameCodec
from gvc.models.pframe import PFrameCodec
from gvc.models.shift import random_shift

_SUBMODELS = {"iframe": IFrameCodec, "pframe": PFrameCodec}


def _build(spec, cls: type, what: str) -> nn.Module:
    """A `cls` from a module (returned as is), a kwargs dict (an optional "class"/"_target_" key must name `cls`),
    or a model file's nested {"class_path", "config"} dict."""
    if isinstance(spec, cls):
        return spec
    if not isinstance(spec, dict):
        raise TypeError(
            f"VideoCodec {what} must be a {cls.__name__} or a dict of its kwargs, got {type(spec)}"
        )
    kwargs = dict(spec)
    if set(kwargs) == {"class_path", "config"}:
        kwargs = {"class": kwargs["class_path"], **kwargs["config"]}
    name = kwargs.pop("class", None) or kwargs.pop("_target_", None)
    kwargs.pop("_target_", None)
    full = f"{cls.__module__}.{cls.__qualname__}"
    if name is not None and name not in (full, cls.__qualname__):
        raise ValueError(f"VideoCodec {what} must be {full}, got {name!r}")
    return cls(**kwargs)


class VideoCodec(nn.Module):
    """I-frame codec + P-frame codec + flow-estimator spec.

    iframe: IFrameCodec or its kwargs dict; pframe: PFrameCodec or its kwargs dict; flow: FlowEstimator or a
    dict {"class": "gvc.models.flow.DISFlow", **kwargs} (default DIS "medium"). freeze_iframe: the I-frame
    codec gets requires_grad False and stays in eval mode (the P-frame stage). checkpoint_pframes: recompute each
    P-frame step in the backward pass (torch.utils.checkpoint) to save memory in long unrolls.
    `config` (JSON) = {"iframe": ..., "pframe": ..., "flow": ..., "freeze_iframe", "checkpoint_pframes"}.
    The P-frame codec's free latent uses this I-frame codec's encoder (attached by reference).
    """

    def __init__(
        self,
        iframe: IFrameCodec | dict,
        pframe: PFrameCodec | dict,
        flow: FlowEstimator | dict | None = None,
        freeze_iframe: bool = True,
        checkpoint_pframes: bool = False,
    ):
        super().__init__()
        self.iframe = _build(iframe, IFrameCodec, "iframe")
        self.pframe = _build(pframe, PFrameCodec, "pframe")
        if isinstance(flow, FlowEstimator):
            self._flow: tuple[FlowEstimator, ...] = (flow,)
            spec = flow_spec(flow)
        else:
            spec = dict(flow or {"class": "gvc.models.flow.DISFlow"})
            if "_target_" in spec:
                spec["class"] = spec.pop("_target_")
            self._flow = ()
        self.freeze_iframe = bool(freeze_iframe)
        self.checkpoint_pframes = bool(checkpoint_pframes)
        self.config = {
            "iframe": dict(self.iframe.config),
            "pframe": dict(self.pframe.config),
            "flow": spec,
            "freeze_iframe": self.freeze_iframe,
            "checkpoint_pframes": self.checkpoint_pframes,
        }
        self.pframe.attach_free_encoder(self.iframe.g_a)
        if self.freeze_iframe:
            self.iframe.requires_grad_(False)
            self.iframe.eval()
        self.size_multiple = max(self.iframe.size_multiple, self.pframe.size_multiple)

    # ------------------------------------------------------------------ helpers
    @property
    def flow_estimator(self) -> FlowEstimator:
        """The frozen flow estimator, built from `config["flow"]` on first use (encoder side only)."""
        if not self._flow:
            self._flow = (build_flow_estimator(self.config["flow"]),)
        return self._flow[0]

    @property
    def shift_period(self) -> int:
        return self.pframe.shift_period

    def shift_for_frame(self, index: int) -> tuple[int, int]:
        """Deterministic residual-branch shift of coded frame `index` ((0, 0) with random_shift off)."""
        return self.pframe.shift_for_frame(index)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_iframe:
            self.iframe.eval()
        return self

    @staticmethod
    def reference(x_hat: torch.Tensor) -> torch.Tensor:
        """The next frame's reference from a reconstruction: float32 (even under autocast) clamped to [0, 1],
        as the decoder has it."""
        return x_hat.float().clamp(0.0, 1.0)

    def estimate_flow(self, ref: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """flow_ref (B, 2, H, W) pixels from the frozen estimator (no grad), or None without the flow input."""
        if not self.pframe.config["flow_input"]:
            return None
        return self.flow_estimator(ref.detach(), x.detach())

    def _iframe_forward(self, x: torch.Tensor, mode: str, **qparams) -> dict:
        if self.freeze_iframe:  # frozen: code it as the decoder will (mode "round"), no graph
            with torch.no_grad():
                out = self.iframe(x, mode="round")
        else:
            out = self.iframe(x, mode=mode, **qparams)
        return {**out, "frame_type": "I"}

    # ------------------------------------------------------------------ training / evaluation
    def forward_clip(
        self,
        clip: torch.Tensor,
        mode: str = "noise",
        shifts=None,
        detach_reference: bool | None = None,
        residual: bool = True,
        **qparams,
    ) -> list[dict]:
        """clip (B, T, 3, H, W) in [0, 1] -> list of T per-frame dicts.

        Frame 0: the I-frame codec's dict (x_hat, likelihoods {"y", "z"}, y_hat; mode "round" and no gradient
        when the I-frame codec is frozen) plus frame_type "I". Frames t >= 1: PFrameCodec.forward's dict plus
        frame_type "P" and flow_ref, predicted from the previous x_hat clamped to [0, 1].
        shifts: None -> random per P-frame in training mode (when the P-frame codec's random_shift is on) and
        `shift_for_frame(t)` in eval mode; or a list of T (dy, dx) (entry 0 unused).
        detach_reference: None uses pframe.config["detach_reference"]; True/False overrides it for this call
        (stop the gradient from frame t into frame t-1's reconstruction).
        residual: False codes P-frames by the flow alone (flow warm-up: x_hat = prediction).
        """
        if clip.dim() != 5:
            raise ValueError(f"clip must be (B, T, 3, H, W), got {tuple(clip.shape)}")
        t_len = clip.shape[1]
        if shifts is not None and len(shifts) != t_len:
            raise ValueError(f"shifts must have one (dy, dx) per frame ({t_len}), got {len(shifts)}")
        detach = (
            self.pframe.config["detach_reference"] if detach_reference is None else bool(detach_reference)
        )
        outs = [self._iframe_forward(clip[:, 0], mode, **qparams)]
        ref = self.reference(outs[0]["x_hat"])
        for t in range(1, t_len):
            x = clip[:, t]
            if shifts is not None:
                shift = tuple(shifts[t])
            elif self.training:
                shift = random_shift(self.shift_period) if self.pframe.config["random_shift"] else (0, 0)
            else:
                shift = self.shift_for_frame(t)
            flow_ref = self.estimate_flow(ref, x)
            ref_in = ref.detach() if detach else ref

            def step(x_, ref_, flow_, shift=shift):
                return self.pframe(x_, ref_, flow_, shift=shift, mode=mode, residual=residual, **qparams)

            if self.checkpoint_pframes and torch.is_grad_enabled():
                out = checkpoint(step, x, ref_in, flow_ref, use_reentrant=False)
            else:
                out = step(x, ref_in, flow_ref)
            outs.append({**out, "frame_type": "P", "flow_ref": flow_ref})
            ref = self.reference(out["x_hat"])
        return outs

    def forward(self, clip: torch.Tensor, mode: str = "noise", **kwargs) -> list[dict]:
        """Alias of `forward_clip`."""
        return self.forward_clip(clip, mode=mode, **kwargs)

    # ------------------------------------------------------------------ frame-wise coding (gvc.codec)
    @torch.no_grad()
    def compress_frame(
        self, x: torch.Tensor, ref: torch.Tensor | None = None, shift=None, frame_index: int | None = None
    ) -> dict:
        """Code one frame x (B, 3, H, W) in [0, 1]: an I-frame when ref is None, else a P-frame from ref (the
        previous decoded frame, (B, 3, H, W) in [0, 1]). shift None: `shift_for_frame(frame_index)`.

        Returns dict(strings (list of per-item byte lists: [y, z] for I, [flow_y, flow_z, res_y, res_z] for P),
        shape ((h_z, w_z) for I, [flow, res] shapes for P), x_hat (the decoder's reconstruction, clamped),
        frame_type "I"/"P", shift (the roll actually applied)).
        """
        if ref is None:
            out = self.iframe.compress(x)
            x_hat = self.iframe.g_s(out["y_hat"]).clamp(0.0, 1.0)
            return {
                "strings": out["strings"],
                "shape": tuple(out["shape"]),
                "x_hat": x_hat,
                "frame_type": "I",
                "shift": (0, 0),
            }
        if shift is None:
            if frame_index is None:
                raise ValueError("a P-frame needs its shift or its frame_index")
            shift = self.shift_for_frame(frame_index)
        shift = self.pframe.effective_shift(shift)
        out = self.pframe.compress(x, ref, self.estimate_flow(ref, x), shift)
        return {
            "strings": out["strings"],
            "shape": out["shapes"],
            "x_hat": out["x_hat"],
            "frame_type": "P",
            "shift": shift,
        }

    @torch.no_grad()
    def decompress_frame(
        self,
        strings: list,
        shape,
        ref: torch.Tensor | None = None,
        shift=None,
        frame_index: int | None = None,
    ) -> dict:
        """Inverse of `compress_frame` given the same ref (None for an I-frame) and shift (or frame_index)
        -> dict(x_hat (B, 3, H, W) clamped to [0, 1])."""
        if ref is None:
            return self.iframe.decompress(strings, shape)
        if shift is None:
            if frame_index is None:
                raise ValueError("a P-frame needs its shift or its frame_index")
            shift = self.shift_for_frame(frame_index)
        return self.pframe.decompress(strings, shape, ref, shift)

    def update(self, force: bool = True, update_quantiles: bool = False) -> bool:
        """Build the entropy-coder CDFs of both codecs."""
        a = self.iframe.update(force=force, update_quantiles=update_quantiles)
        b = self.pframe.update(force=force, update_quantiles=update_quantiles)
        return a or b

    def aux_loss(self) -> torch.Tensor:
        """The P-frame bottlenecks' quantile loss (plus the I-frame's when it is not frozen)."""
        loss = self.pframe.aux_loss()
        return loss if self.freeze_iframe else loss + self.iframe.aux_loss()


__all__ = ["VideoCodec"]
