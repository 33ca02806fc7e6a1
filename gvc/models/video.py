"""VideoCodec: low-delay I-then-P coding with a frozen I-frame codec (docs/METHOD.md section 3).

Frame 0 of a clip (or of a GOP) is coded by the I-frame codec; every later frame is a P-frame predicted from the
previous reconstruction (clamped to [0, 1], as the decoder has it). The frozen flow estimator runs on the encoder
side only; it is not part of the weights (a decoder never builds it), so `config["flow"]` is only a spec.

The GOP loop is `step(x, state, latents)`, written once: training (`forward_clip`, TrainLatents), encoding and
decoding (gvc.codec.coder, EncodeLatents / DecodeLatents) all advance a `GOPState` frame by frame through it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gvc.models.bottleneck import EntropyPlacement
from gvc.models.flow import FlowEstimator, build_flow_estimator, flow_spec
from gvc.models.iframe import IFrameCodec
from gvc.models.latents import DecodeLatents, EncodeLatents, FrameOut, LatentCoding, TrainLatents
from gvc.models.pframe import PFrameCodec
from gvc.models.shift import random_shift

_SUBMODELS = {"iframe": IFrameCodec, "pframe": PFrameCodec}
#: which previous frame the frozen flow estimator compares x_t with (encoder side only; the decoder never runs it)
FLOW_REFERENCES = ("decoded", "original")


@dataclass
class GOPState:
    """Where a low-delay GOP stands before `VideoCodec.step` codes the next frame.

    ref: the reference frame (the previous reconstruction, float32 clamped to [0, 1]: `VideoCodec.reference`),
    None before the first frame. index: the next frame's index in the sequence. period: the I-frame period
    (<= 0: only frame 0 is an I-frame). shift: the next P-frame's residual shift (None: the codec draws it;
    reset after every step). frame_type: force the next frame's type ("I"/"P"; a decoder follows the packet;
    reset after every step). detach_reference: None follows the P-frame codec's config, True/False overrides it.
    prev_x: the previous ORIGINAL frame (encoder side only: the flow estimator's reference with
    flow_reference "original" and in oracle-flow mode), None when decoding or before the first frame.
    """

    ref: torch.Tensor | None = None
    prev_x: torch.Tensor | None = None
    index: int = 0
    period: int = 0
    shift: tuple[int, int] | None = None
    frame_type: str | None = None
    detach_reference: bool | None = None

    def intra(self) -> bool:
        """Whether the next frame is an I-frame: forced, else frame 0, a period boundary or no reference."""
        if self.frame_type is not None:
            if self.frame_type not in ("I", "P"):
                raise ValueError(f"frame type must be 'I' or 'P', got {self.frame_type!r}")
            if self.frame_type == "P" and self.ref is None:
                raise ValueError(f"frame {self.index}: a P-frame needs a reference frame")
            return self.frame_type == "I"
        return self.ref is None or self.index == 0 or (self.period > 0 and self.index % self.period == 0)

    def advance(self, ref: torch.Tensor, x: torch.Tensor | None = None) -> None:
        """After a frame: its reconstruction becomes the reference (and the original x, when given, prev_x);
        next index; shift and type reset."""
        self.ref = ref
        self.prev_x = None if x is None else x.detach()
        self.index += 1
        self.shift = None
        self.frame_type = None


def _build(spec, cls: type, what: str) -> nn.Module:
    """A `cls` from a module (returned as is), a kwargs dict (an optional "_target_" key must name `cls`), or a
    model file's nested {"class_path", "config"} dict."""
    if isinstance(spec, cls):
        return spec
    if not isinstance(spec, dict):
        raise TypeError(
            f"VideoCodec {what} must be a {cls.__name__} or a dict of its kwargs, got {type(spec)}"
        )
    kwargs = dict(spec)
    if set(kwargs) == {"class_path", "config"}:
        kwargs = {"_target_": kwargs["class_path"], **kwargs["config"]}
    name = kwargs.pop("_target_", None)
    full = f"{cls.__module__}.{cls.__qualname__}"
    if name is not None and name not in (full, cls.__qualname__):
        raise ValueError(f"VideoCodec {what} must be {full}, got {name!r}")
    return cls(**kwargs)


class VideoCodec(nn.Module):
    """I-frame codec + P-frame codec + flow-estimator spec.

    iframe: IFrameCodec or its kwargs dict; pframe: PFrameCodec or its kwargs dict; flow: FlowEstimator or a
    dict {"_target_": "gvc.models.flow.DISFlow", **kwargs} (default DIS "medium"; a spec is kept as given, so a
    model file written with the older spelling "class" keeps its config and hence its model id). freeze_iframe: the I-frame
    codec gets requires_grad False and stays in eval mode (the P-frame stage). checkpoint_pframes: recompute each
    P-frame step in the backward pass (torch.utils.checkpoint) to save memory in long unrolls.
    flow_reference: the frozen flow estimator's first frame, "decoded" (the previous reconstruction, what the
    decoder warps) or "original" (the previous source frame, which a low-delay encoder also has: the true motion,
    not motion plus coding error; DIS against a 20-23 dB reconstruction is off by 0.6-1.3 px more). It feeds
    E_flow and the flow loss; the default "decoded" is what model files written before this option used.
    `config` (JSON) = {"iframe": ..., "pframe": ..., "flow": ..., "freeze_iframe", "checkpoint_pframes",
    "flow_reference"}.
    The P-frame codec's free latent uses this I-frame codec's encoder (attached by reference).
    """

    def __init__(
        self,
        iframe: IFrameCodec | dict,
        pframe: PFrameCodec | dict,
        flow: FlowEstimator | dict | None = None,
        freeze_iframe: bool = True,
        checkpoint_pframes: bool = False,
        flow_reference: str = "decoded",
    ):
        super().__init__()
        if flow_reference not in FLOW_REFERENCES:
            raise ValueError(f"flow_reference must be one of {FLOW_REFERENCES}, got {flow_reference!r}")
        self.flow_reference = flow_reference
        self.iframe = _build(iframe, IFrameCodec, "iframe")
        self.pframe = _build(pframe, PFrameCodec, "pframe")
        if isinstance(flow, FlowEstimator):
            self._flow: tuple[FlowEstimator, ...] = (flow,)
            spec = flow_spec(flow)
        else:
            spec = dict(flow or {"_target_": "gvc.models.flow.DISFlow"})
            self._flow = ()
        self.freeze_iframe = bool(freeze_iframe)
        self.checkpoint_pframes = bool(checkpoint_pframes)
        self.config = {
            "iframe": dict(self.iframe.config),
            "pframe": dict(self.pframe.config),
            "flow": spec,
            "freeze_iframe": self.freeze_iframe,
            "checkpoint_pframes": self.checkpoint_pframes,
            "flow_reference": self.flow_reference,
        }
        if self.iframe.rate_levels != self.pframe.rate_levels:
            raise ValueError(
                f"the I-frame codec has {self.iframe.rate_levels} rate levels and the P-frame codec "
                f"{self.pframe.rate_levels}: both code one quality level q per frame, so they must match"
            )
        self.pframe.attach_free_encoder(self.iframe.g_a)
        if self.freeze_iframe:
            self.iframe.requires_grad_(False)
            self.iframe.eval()
        self.size_multiple = max(self.iframe.size_multiple, self.pframe.size_multiple)

    # ------------------------------------------------------------------ helpers
    @property
    def rate_levels(self) -> int:
        """Trained quality levels of both codecs (0: a single-rate codec)."""
        return self.iframe.rate_levels

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

    def flow_source(self, state: GOPState) -> torch.Tensor:
        """The estimator's first frame for the next P-frame: state.prev_x with flow_reference "original" (when
        known), else the reference state.ref."""
        if self.flow_reference == "original" and state.prev_x is not None:
            return state.prev_x
        return state.ref

    def draw_shift(self, index: int) -> tuple[int, int]:
        """The residual shift of coded frame `index`: random in training mode (with random_shift on), else
        `shift_for_frame(index)` (what the coder uses and stores in each packet)."""
        if self.training:
            return random_shift(self.shift_period) if self.pframe.config["random_shift"] else (0, 0)
        return self.shift_for_frame(index)

    # ------------------------------------------------------------------ the GOP loop's step
    def step(
        self,
        x: torch.Tensor | None,
        state: GOPState,
        latents: LatentCoding,
        residual: bool = True,
        oracle_flow: bool = False,
    ) -> FrameOut:
        """Code frame `state.index` and advance `state` (its reference becomes this frame's reconstruction).

        The one low-delay step for training (TrainLatents, `forward_clip`), encoding (EncodeLatents) and
        decoding (DecodeLatents, x None; gvc.codec.coder). An I-frame when `state.intra()`, else a P-frame
        predicted from `state.ref` with shift `state.shift` (None: `draw_shift(index)`); the frozen flow
        estimator runs only when the strategy encodes. The frozen I-frame codec is coded with
        `latents.for_frozen()` and no gradient. With a bitstream strategy x_hat is clamped to [0, 1] (the
        decoder's frame; the pipelines clamp it). residual=False: flow-only P-frames (flow warm-up). oracle_flow (diagnosis, training
        strategies only): P-frames are predicted with the estimator's flow between the ORIGINAL frames, sigma 0,
        and no flow latent (no flow bits): the upper bound of what a better flow codec could give.
        -> FrameOut (IFrameCodec.code / PFrameCodec.code) with frame_type and shift set.
        """
        if state.intra():
            if self.freeze_iframe:
                with torch.no_grad() if latents.frozen_no_grad else contextlib.nullcontext():
                    out = self.iframe.code(x, latents.for_frozen())
            else:
                out = self.iframe.code(x, latents)
        else:
            shift = state.shift if state.shift is not None else self.draw_shift(state.index)
            if oracle_flow:
                if latents.bitstream or state.prev_x is None:
                    raise ValueError("oracle_flow needs a training strategy and the previous original frame")
                flow_ref = self.flow_estimator(state.prev_x, x.detach())
            else:
                flow_ref = self.estimate_flow(self.flow_source(state), x) if latents.encodes else None
            detach = (
                self.pframe.config["detach_reference"]
                if state.detach_reference is None
                else bool(state.detach_reference)
            )
            ref = state.ref.detach() if detach else state.ref

            def p_step(x_, ref_, flow_):
                return self.pframe.code(x_, ref_, latents, flow_, shift, residual, oracle_flow)

            if self.checkpoint_pframes and torch.is_grad_enabled():
                out = checkpoint(p_step, x, ref, flow_ref, use_reentrant=False)
            else:
                out = p_step(x, ref, flow_ref)
        state.advance(self.reference(out.x_hat), x if latents.encodes else None)
        return out

    # ------------------------------------------------------------------ training / evaluation
    def forward_clip(
        self,
        clip: torch.Tensor,
        mode: str = "noise",
        shifts=None,
        detach_reference: bool | None = None,
        residual: bool = True,
        oracle_flow: bool = False,
        q=None,
        **qparams,
    ) -> list[FrameOut]:
        """clip (B, T, 3, H, W) in [0, 1] -> list of T FrameOuts: `step` over the clip with TrainLatents(mode).

        Frame 0: the I-frame codec's (x_hat, likelihoods {"y", "z"}, y_hat; mode "round" and no gradient when
        the I-frame codec is frozen), frame_type "I". Frames t >= 1: PFrameCodec.code's output (frame_type "P",
        flow_ref), predicted from the previous x_hat clamped to [0, 1] in float32.
        shifts: None -> random per P-frame in training mode (when the P-frame codec's random_shift is on) and
        `shift_for_frame(t)` in eval mode; or a list of T (dy, dx) (entry 0 unused).
        detach_reference: None uses pframe.config["detach_reference"]; True/False overrides it for this call
        (stop the gradient from frame t into frame t-1's reconstruction).
        residual: False codes P-frames by the flow alone (flow warm-up: x_hat = prediction). oracle_flow: see
        `step`. q: the quality level of a variable-rate codec ((B,) or a number; every frame of a clip), None
        for one rate.
        """
        if clip.dim() != 5:
            raise ValueError(f"clip must be (B, T, 3, H, W), got {tuple(clip.shape)}")
        t_len = clip.shape[1]
        if shifts is not None and len(shifts) != t_len:
            raise ValueError(f"shifts must have one (dy, dx) per frame ({t_len}), got {len(shifts)}")
        latents = TrainLatents(mode, q=q, **qparams)
        state = GOPState(detach_reference=detach_reference)
        outs = []
        for t in range(t_len):
            if shifts is not None and t > 0:
                state.shift = tuple(shifts[t])
            outs.append(self.step(clip[:, t], state, latents, residual=residual, oracle_flow=oracle_flow))
        return outs

    def forward(self, clip: torch.Tensor, mode: str = "noise", **kwargs) -> list[FrameOut]:
        """Alias of `forward_clip`."""
        return self.forward_clip(clip, mode=mode, **kwargs)

    # ------------------------------------------------------------------ one frame at a time (tests, tools)
    @torch.no_grad()
    def compress_frame(
        self,
        x: torch.Tensor,
        ref: torch.Tensor | None = None,
        shift=None,
        frame_index: int | None = None,
        placement: EntropyPlacement | None = None,
        q=None,
    ) -> FrameOut:
        """`step` with EncodeLatents (at quality level q) on one frame x (B, 3, H, W) in [0, 1]: an I-frame when ref is None, else a
        P-frame from ref (the previous decoded frame). shift None: `shift_for_frame(frame_index)`.

        FrameOut with strings ([y, z] for I, [flow_y, flow_z, res_y, res_z] for P), shapes (one z grid per
        latent), x_hat (the decoder's frame, clamped), frame_type, shift (the roll actually applied)."""
        return self.step(x, self._frame_state(ref, shift, frame_index), EncodeLatents(placement, q=q))

    @torch.no_grad()
    def decompress_frame(
        self,
        strings: list,
        shapes,
        ref: torch.Tensor | None = None,
        shift=None,
        frame_index: int | None = None,
        placement: EntropyPlacement | None = None,
        q=None,
    ) -> FrameOut:
        """Inverse of `compress_frame` given its strings and shapes, the same q, the same ref (None for an I-frame) and
        shift (or frame_index): `step` with DecodeLatents -> FrameOut with x_hat (B, 3, H, W) clamped to [0, 1]."""
        names = ("",) if ref is None else PFrameCodec.LATENTS
        latents = DecodeLatents.from_packet(names, strings, list(shapes), placement, q)
        return self.step(None, self._frame_state(ref, shift, frame_index), latents)

    def _frame_state(self, ref, shift, frame_index) -> GOPState:
        if ref is None:
            return GOPState(index=0 if frame_index is None else frame_index, frame_type="I")
        if shift is None:
            if frame_index is None:
                raise ValueError("a P-frame needs its shift or its frame_index")
            shift = self.shift_for_frame(frame_index)
        index = 1 if frame_index is None else frame_index
        return GOPState(ref=self.reference(ref), index=index, shift=tuple(shift), frame_type="P")

    def update(self, force: bool = True, update_quantiles: bool = False) -> bool:
        """Build the entropy-coder CDFs of both codecs."""
        a = self.iframe.update(force=force, update_quantiles=update_quantiles)
        b = self.pframe.update(force=force, update_quantiles=update_quantiles)
        return a or b

    def aux_loss(self) -> torch.Tensor:
        """The P-frame bottlenecks' quantile loss (plus the I-frame's when it is not frozen)."""
        loss = self.pframe.aux_loss()
        return loss if self.freeze_iframe else loss + self.iframe.aux_loss()


__all__ = ["GOPState", "VideoCodec"]
