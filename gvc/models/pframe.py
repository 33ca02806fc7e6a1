"""P-frame codec (docs/METHOD.md section 3): flow codec + motion compensation + residual codec with a free latent.

Per frame, with the previous reconstruction x_ref_hat and the frozen estimator's flow flow_ref (pixels):
1. flow codec: y_flow = E_flow([2 x - 1, 2 x_ref_hat - 1, flow_ref / flow_normalizer]) (the flow input only
   with `flow_input`; x_ref_hat is always detached here), own hyperprior; G_flow(y_flow_hat) -> (3 channels)
   flow_hat = out[:2] * flow_normalizer (pixels), sigma = softplus(out[2]) (blur std, pixels).
2. prediction = scale_space_blur(backward_warp(x_ref_hat, flow_hat), sigma) (bicubic, then scale-space blur).
3. residual codec, inside a roll by `shift` = (dy, dx) (`gvc.models.shift`; identity when `random_shift` is
   off): r = roll(x - prediction) in [-1, 1]; y_res = E_res(r); y_free = E_I(roll(prediction)) from the frozen
   I-frame encoder (no bits; only with `free_latent`; `free_latent_grad` false stops its gradient into the
   prediction); r_hat = unroll(2 G_res(y_res_hat, y_free) - 1); x_hat = prediction + r_hat (not clamped in
   forward; decompress clamps to [0, 1]).
E_res/G_res have the I-frame architecture and are initialized from E_I/G_I by `init_from_iframe`.

Residual mapping (`residual_mapping`): the I-frame autoencoder maps an image x in [0, 1] by
f_I(x) = G_I(E_I.net(2x - 1)). Two ways to reuse it for a residual r in [-1, 1]:
- "unit" (unit gain, the default of every config): r is coded as the image r + 0.5, so E_res(r) = E.net(2r)
  and r_hat = G_res(...) - 0.5; right after `init_from_iframe` (bottleneck copied, free-latent branch zero)
  f_res(r) == f_I(r + 0.5) - 0.5 exactly: the residual codec starts with the I-frame codec's error, not twice it.
- "affine" (the mapping of model files written before "unit" existed): the affine map a(x) = 2x - 1 between
  [0, 1] images and [-1, 1] residuals, f_res(r) = a(f_I(a^-1(r))) = 2 G(E.net(r)) - 1; it doubles the I-frame
  codec's error (a zero residual decoded to 0.18 RMS right after init on a small model).

Flow warm-up: `forward(..., residual=False)` codes only the flow; x_hat is the prediction itself, so the
prediction alone has to explain the frame (the trainer does this for stage.flow_warmup_steps).

The free latent enters G_res through its own branch (`ResidualGenerator`): G_I's head is CN -> conv -> CN on
y_res_hat; y_free goes through its own ChannelNorm and a zero-initialized conv3x3 whose output is added after
G_I's head conv, before the head's second CN. So at initialization G_res(y_res_hat, y_free) == G_I(y_res_hat)
exactly, for any y_free. (Concatenating y_free before G_I's first ChannelNorm could not reproduce G_I: that norm
mixes statistics over all input channels.)

One code path: `code(x, x_ref_hat, latents, ...)` is the pipeline; `forward(mode=...)` runs it with
TrainLatents (the quantization modes of `gvc.models.quantization`), `compress` with EncodeLatents and
`decompress` with DecodeLatents (gvc.models.latents); forward(mode="round") gives the decoder's x_hat (before
clamp).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gvc.models.bottleneck import EntropyPlacement, HyperpriorBottleneck
from gvc.models.config import derive_config
from gvc.models.iframe import Encoder, Generator, IFrameCodec
from gvc.models.latents import (
    CodedLatents,
    DecodeLatents,
    EncodeLatents,
    FrameOut,
    LatentCoding,
    TrainLatents,
)
from gvc.models.layers import ChannelNorm, check_norm, conv, plain_norm
from gvc.models.shift import apply_shift, undo_shift
from gvc.models.shift import shift_for_frame as _shift_for_frame
from gvc.models.warp import backward_warp, scale_space_blur

#: how the residual r in [-1, 1] meets the I-frame autoencoder (module docstring, "Residual mapping")
RESIDUAL_MAPPINGS = ("unit", "affine")


class ResidualGenerator(Generator):
    """G_res: the I-frame Generator on y_res_hat plus a free-latent branch (see the module docstring).

    forward(y_res_hat (B, latent_channels, h, w), y_free (B, free_channels, h, w) or None) -> (B, out, H, W).
    """

    def __init__(
        self,
        latent_channels: int,
        channels: Sequence[int],
        num_residual_blocks: int,
        out_channels: int = 3,
        free_channels: int = 0,
        norm_eps: float = 1e-3,
        norm: str = "channel",
        kernel_size: int = 3,
        stem: bool = True,
    ):
        super().__init__(
            latent_channels, channels, num_residual_blocks, out_channels, 0, norm_eps, norm, kernel_size, stem
        )
        self.free_channels = int(free_channels)
        if self.free_channels:
            top = list(channels)[-1]
            self.free_norm = plain_norm(norm, self.free_channels, norm_eps)
            self.free_conv = conv(self.free_channels, top, 3)
            nn.init.zeros_(self.free_conv.weight)
            nn.init.zeros_(self.free_conv.bias)

    def forward(self, y: torch.Tensor, y_free: torch.Tensor | None = None) -> torch.Tensor:
        norm_in, head_conv, norm_out = self.head
        h = head_conv(norm_in(y))
        if self.free_channels:
            if y_free is None:
                raise ValueError("this G_res was built with a free latent; pass y_free")
            h = h + self.free_conv(self.free_norm(y_free))
        h = norm_out(h)
        h = h + self.blocks(h)
        return self.tail(self.up(h))


class PFrameCodec(nn.Module):
    """P-frame codec; frames (B, 3, H, W) in [0, 1], H, W multiples of `size_multiple` (64 by default).

    Residual codec (must match the I-frame codec for `init_from_iframe`): channels, latent_channels,
    num_residual_blocks, hyper_channels, norm_eps, scale_min/max/levels (entropy model of both bottlenecks).
    Flow codec [ours]: flow_channels (encoder widths; G_flow mirrors them), flow_latent_channels,
    flow_num_residual_blocks, flow_hyper_channels; flow_normalizer (pixels: flow_ref is divided and G_flow's
    output multiplied by it); flow_head_init_gain (G_flow's last conv weights are scaled by it so the initial
    flow is ~0) and sigma_init (initial pre-softplus blur, bias of G_flow's sigma channel).
    Scale-space blur [ours]: blur_levels, blur_sigma0 (level k >= 1 has std blur_sigma0 * 2^(k-1) pixels),
    blur_truncate (Gaussian radius in stds).
    Switches [paper]: free_latent (y_free = E_I(prediction) into G_res), flow_input (flow_ref into E_flow),
    random_shift (roll the residual branch; off: every shift is ignored), detach_reference (stop the gradient
    into x_ref_hat for the whole P-frame; the flow codec's copy of it is always detached), free_latent_grad
    [ours] (gradients flow from G_res back through y_free and the frozen E_I into the prediction, hence into
    the flow branch; false: y_free = E_I(sg(prediction))).
    shift_period: the range [0, period) of shifts (E_res's stride).
    rate_levels >= 2: both latents (flow, residual) are rate-conditioned (gvc.models.gains, rate_gain_init the
    lowest and highest level's initial gain, rate_gain_hyper: their hyper-latents too), and every call takes a
    quality level q; 0: one rate.
    Keyword-only arguments without defaults (conf/model/*.yaml gives them), kept in `self.config`
    (gvc.models.config.derive_config); what model files written before an option existed hold is
    gvc.models.config.LEGACY_CONFIG.
    """

    #: the latents a P-frame codes, in coding (and packet) order
    LATENTS = ("flow", "res")

    def __init__(
        self,
        *,
        channels: Sequence[int],
        latent_channels: int,
        num_residual_blocks: int,
        hyper_channels: int,
        flow_channels: Sequence[int],
        flow_latent_channels: int,
        flow_num_residual_blocks: int,
        flow_hyper_channels: int,
        flow_normalizer: float,
        flow_head_init_gain: float,
        sigma_init: float,
        blur_levels: int,
        blur_sigma0: float,
        blur_truncate: float,
        free_latent: bool,
        flow_input: bool,
        random_shift: bool,
        detach_reference: bool,
        free_latent_grad: bool,
        shift_period: int,
        in_channels: int,
        norm_eps: float,
        scale_min: float,
        scale_max: float,
        scale_levels: int,
        norm: str,
        kernel_size: int,
        stem: bool,
        flow_norm: str,
        flow_kernel_size: int,
        flow_stem: bool,
        residual_mapping: str,
        rate_levels: int,
        rate_gain_init: Sequence[float],
        rate_gain_hyper: bool,
    ):
        super().__init__()
        check_norm(norm)
        check_norm(flow_norm)
        if residual_mapping not in RESIDUAL_MAPPINGS:
            raise ValueError(f"residual_mapping must be one of {RESIDUAL_MAPPINGS}, got {residual_mapping!r}")
        self.config = derive_config(PFrameCodec.__init__, locals())
        c = self.config
        if len(c["flow_channels"]) != len(c["channels"]):
            raise ValueError("flow_channels and channels must have the same length (same latent grid)")
        if c["flow_normalizer"] <= 0:
            raise ValueError(f"flow_normalizer must be > 0, got {flow_normalizer}")
        entropy = (
            c["scale_min"],
            c["scale_max"],
            c["scale_levels"],
            c["rate_levels"],
            c["rate_gain_init"],
            c["rate_gain_hyper"],
        )
        # flow codec
        flow_in = 2 * in_channels + (2 if c["flow_input"] else 0)
        flow_transform = {"norm": flow_norm, "kernel_size": int(flow_kernel_size), "stem": bool(flow_stem)}
        self.flow_encoder = Encoder(
            flow_in, c["flow_channels"], flow_latent_channels, norm_eps, **flow_transform
        )
        self.flow_generator = Generator(
            flow_latent_channels,
            c["flow_channels"],
            flow_num_residual_blocks,
            3,
            0,
            norm_eps,
            **flow_transform,
        )
        with torch.no_grad():
            head = self.flow_generator.output_layer
            head.weight.mul_(c["flow_head_init_gain"])
            head.bias.zero_()
            head.bias[2] = c["sigma_init"]
        self.flow_bottleneck = HyperpriorBottleneck(flow_latent_channels, flow_hyper_channels, *entropy)
        # residual codec (I-frame architecture; the residual is in [-1, 1] already, so no input mapping; the
        # output is mapped by 2 g - 1 in `synthesize_residual`: see "Residual mapping" in the module docstring)
        transform = {"norm": norm, "kernel_size": int(kernel_size), "stem": bool(stem)}
        unit = residual_mapping == "unit"
        self.res_encoder = Encoder(
            in_channels,
            c["channels"],
            latent_channels,
            norm_eps,
            input_scale=2.0 if unit else 1.0,
            **transform,
        )
        self.res_generator = ResidualGenerator(
            latent_channels,
            c["channels"],
            num_residual_blocks,
            in_channels,
            latent_channels if c["free_latent"] else 0,
            norm_eps,
            **transform,
        )
        self.res_bottleneck = HyperpriorBottleneck(latent_channels, hyper_channels, *entropy)
        self.size_multiple = self.res_encoder.downsampling * self.res_bottleneck.downsampling
        self._free_encoder: tuple[
            nn.Module, ...
        ] = ()  # held by reference: not a submodule, not in state_dict

    # ------------------------------------------------------------------ I-frame link
    @property
    def rate_levels(self) -> int:
        """Trained quality levels (0: a single-rate codec)."""
        return self.res_bottleneck.rate_levels

    @property
    def shift_period(self) -> int:
        return self.config["shift_period"]

    @property
    def d_latent_channels(self) -> int:
        """Channels of `d_latent` (D_P's condition): latent_channels, doubled with the free latent."""
        return self.config["latent_channels"] * (2 if self.config["free_latent"] else 1)

    def attach_free_encoder(self, encoder: nn.Module | IFrameCodec) -> None:
        """Hold E_I (an Encoder, or an IFrameCodec's g_a) by reference for y_free; it is not registered as a
        submodule (its weights live in the I-frame codec) and is not frozen here (the caller freezes it)."""
        if isinstance(encoder, IFrameCodec):
            encoder = encoder.g_a
        self._free_encoder = (encoder,)

    @property
    def free_encoder(self) -> nn.Module | None:
        return self._free_encoder[0] if self._free_encoder else None

    def _check_iframe(self, iframe: IFrameCodec) -> None:
        ours, theirs = self.config, iframe.config
        keys = (
            "channels",
            "latent_channels",
            "num_residual_blocks",
            "in_channels",
            "norm",
            "kernel_size",
            "stem",
            "rate_levels",
        )
        bad = [k for k in keys if str(ours[k]) != str(theirs[k])]  # an old file's: filled in by LEGACY_CONFIG
        if bad:
            raise ValueError(
                f"P-frame residual codec and I-frame codec differ in {bad}; cannot initialize from it"
            )

    def init_from_iframe(self, iframe: IFrameCodec, copy_bottleneck: bool = False) -> None:
        """E_res <- E_I weights, G_res <- G_I weights (free-latent branch zeroed), attach E_I for y_free.

        After this, G_res(y, y_free) == iframe.g_s(y) for every y, y_free, and the residual autoencoder is the
        I-frame autoencoder through `residual_mapping` (module docstring). copy_bottleneck=True (what training
        does) also copies the I-frame hyperprior into the residual bottleneck (CDF tables are rebuilt by
        `update`), so the residual codec starts where the I-frame codec is.
        """
        self._check_iframe(iframe)
        self.res_encoder.net.load_state_dict(iframe.g_a.net.state_dict())
        missing, unexpected = self.res_generator.load_state_dict(iframe.g_s.state_dict(), strict=False)
        if unexpected or any(not k.startswith("free_") for k in missing):
            raise ValueError(f"G_I does not fit G_res (missing {missing}, unexpected {unexpected})")
        if self.config["free_latent"]:
            with torch.no_grad():
                self.res_generator.free_conv.weight.zero_()
                self.res_generator.free_conv.bias.zero_()
                if isinstance(self.res_generator.free_norm, ChannelNorm):
                    self.res_generator.free_norm.gamma.fill_(1.0)
                    self.res_generator.free_norm.beta.zero_()
        if copy_bottleneck:
            trained = {
                k: v
                for k, v in iframe.bottleneck.state_dict().items()
                if not k.endswith(("_quantized_cdf", "_offset", "_cdf_length"))
            }
            self.res_bottleneck.load_state_dict(trained, strict=False)
        self.attach_free_encoder(iframe)

    # ------------------------------------------------------------------ shared pieces of the pipeline
    def check_input(self, x: torch.Tensor, x_ref_hat: torch.Tensor) -> None:
        m = self.size_multiple
        if x.dim() != 4 or x.shape[1] != self.config["in_channels"] or x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(
                f"PFrameCodec expects (B, {self.config['in_channels']}, H, W) with H, W multiples of {m}, got "
                f"{tuple(x.shape)}; pad the frame first (the codec layer does)"
            )
        if x_ref_hat.shape != x.shape:
            raise ValueError(f"reference {tuple(x_ref_hat.shape)} and frame {tuple(x.shape)} differ in shape")

    def effective_shift(self, shift) -> tuple[int, int]:
        """The roll actually applied: (0, 0) when random_shift is off, else shift modulo the period."""
        if not self.config["random_shift"] or shift is None:
            return (0, 0)
        p = self.config["shift_period"]
        return int(shift[0]) % p, int(shift[1]) % p

    def shift_for_frame(self, index: int) -> tuple[int, int]:
        """Deterministic shift of coded frame `index` (gvc.models.shift.shift_for_frame); (0, 0) when off."""
        if not self.config["random_shift"]:
            return (0, 0)
        return _shift_for_frame(index, self.config["shift_period"])

    def flow_encoder_input(self, x: torch.Tensor, x_ref_hat: torch.Tensor, flow_ref: torch.Tensor | None):
        """concat(2x-1, 2 sg(x_ref_hat)-1[, flow_ref / flow_normalizer]) (B, 6 or 8, H, W)."""
        parts = [x * 2.0 - 1.0, x_ref_hat.detach() * 2.0 - 1.0]
        if self.config["flow_input"]:
            if flow_ref is None:
                raise ValueError(
                    "flow_input is on: pass flow_ref (B, 2, H, W) pixels from the flow estimator"
                )
            parts.append(flow_ref.detach().to(x.dtype) / self.config["flow_normalizer"])
        return torch.cat(parts, dim=1)

    def decode_flow(self, y_flow_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """G_flow(y_flow_hat) -> (flow_hat (B, 2, H, W) pixels, sigma (B, 1, H, W) >= 0 pixels), float32."""
        out = self.flow_generator(y_flow_hat).float()  # float32 from here on (docs/METHOD.md section 2.8)
        return out[:, :2] * self.config["flow_normalizer"], F.softplus(out[:, 2:3])

    def predict(self, x_ref_hat: torch.Tensor, flow_hat: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Blur(Warp(x_ref_hat, flow_hat), sigma) (B, 3, H, W)."""
        c = self.config
        warped = backward_warp(x_ref_hat, flow_hat)
        return scale_space_blur(warped, sigma, c["blur_levels"], c["blur_sigma0"], c["blur_truncate"])

    def free_latent(self, prediction_shifted: torch.Tensor) -> torch.Tensor | None:
        """y_free = E_I(prediction) (already rolled), or None without the free latent."""
        if not self.config["free_latent"]:
            return None
        enc = self.free_encoder
        if enc is None:
            raise RuntimeError(
                "free_latent is on but no I-frame encoder is attached: call init_from_iframe(iframe) or "
                "attach_free_encoder(iframe) (VideoCodec does this)"
            )
        if not self.config["free_latent_grad"]:
            prediction_shifted = prediction_shifted.detach()
        return enc(prediction_shifted)

    def synthesize_residual(
        self, y_res_hat: torch.Tensor, y_free: torch.Tensor | None, shift
    ) -> torch.Tensor:
        """r_hat = unroll(G_res(y_res_hat, y_free) - 0.5) ("unit" mapping) or unroll(2 G_res - 1) ("affine")
        (B, 3, H, W), residual units ([-1, 1] scale)."""
        g = self.res_generator(y_res_hat, y_free)
        r_hat = g - 0.5 if self.config["residual_mapping"] == "unit" else 2.0 * g - 1.0
        return undo_shift(r_hat, shift)

    def _reference(self, x_ref_hat: torch.Tensor) -> torch.Tensor:
        return x_ref_hat.detach() if self.config["detach_reference"] else x_ref_hat

    # ------------------------------------------------------------------ the pipeline
    def code(
        self,
        x: torch.Tensor | None,
        x_ref_hat: torch.Tensor,
        latents: LatentCoding,
        flow_ref: torch.Tensor | None = None,
        shift=(0, 0),
        residual: bool = True,
        oracle_flow: bool = False,
    ) -> FrameOut:
        """The P-frame pipeline, once for training, encoding and decoding (`latents`: gvc.models.latents).

        Flow first: the flow latent is coded (analysis E_flow(x, sg(x_ref_hat), flow_ref)); the prediction comes
        from the DECODED flow, G_flow(y_flow_hat); then the residual x - prediction is coded (analysis
        E_res(roll(x - prediction))) and x_hat = prediction + unroll(2 G_res(y_res_hat, y_free) - 1). When
        decoding (DecodeLatents) x is None and neither analysis runs.

        x, x_ref_hat (B, 3, H, W) in [0, 1]; flow_ref (B, 2, H, W) pixels (needed with flow_input when encoding).
        -> FrameOut(frame_type "P", x_hat (not clamped when training; clamped to [0, 1] with a bitstream
        strategy, the decoder's frame), likelihoods / likelihoods_q {"flow_y", "flow_z",
        "res_y", "res_z"}, strings [flow_y, flow_z, res_y, res_z] and shapes [flow, res] when coding a file,
        prediction, y_flow_hat, flow_hat (pixels), sigma (pixels), y_res_hat, y_free (None without the free latent), d_latent
        (y_res_hat and y_free concatenated: D_P's condition), shift (the roll applied), flow_ref).
        residual=False (flow warm-up): no residual branch; x_hat = prediction, only the flow latent,
        y_res_hat / y_free / d_latent None. oracle_flow (diagnosis): no flow latent; the prediction warps with
        flow_ref itself and sigma 0 (y_flow_hat None, no flow likelihoods).
        """
        if latents.encodes:
            self.check_input(x, x_ref_hat)
        shift = self.effective_shift(shift)
        coded = CodedLatents()
        if oracle_flow:
            if flow_ref is None:
                raise ValueError("oracle_flow needs flow_ref")
            flow_hat = flow_ref.detach().float()
            sigma = torch.zeros_like(flow_hat[:, :1])
            y_flow_hat = None
        else:
            flow = coded.add(
                "flow",
                latents.code(
                    "flow",
                    self.flow_bottleneck,
                    lambda: self.flow_encoder(self.flow_encoder_input(x, x_ref_hat, flow_ref)),
                ),
            )
            flow_hat, sigma = self.decode_flow(flow.y_hat)
            y_flow_hat = flow.y_hat
        prediction = self.predict(self._reference(x_ref_hat), flow_hat, sigma)
        x_hat, y_res_hat, y_free, d_latent = prediction, None, None, None
        if residual:
            res = coded.add(
                "res",
                latents.code(
                    "res", self.res_bottleneck, lambda: self.res_encoder(apply_shift(x - prediction, shift))
                ),
            )
            y_free = self.free_latent(apply_shift(prediction, shift))
            x_hat = prediction + self.synthesize_residual(res.y_hat, y_free, shift)
            y_res_hat = res.y_hat
            d_latent = res.y_hat if y_free is None else torch.cat([res.y_hat, y_free], dim=1)
        if latents.bitstream:
            x_hat = x_hat.clamp(0.0, 1.0)
        return FrameOut(
            "P",
            x_hat,
            shift=shift,
            prediction=prediction,
            y_flow_hat=y_flow_hat,
            flow_hat=flow_hat,
            sigma=sigma,
            y_res_hat=y_res_hat,
            y_free=y_free,
            d_latent=d_latent,
            flow_ref=flow_ref,
            **coded.fields(),
        )

    def forward(
        self,
        x: torch.Tensor,
        x_ref_hat: torch.Tensor,
        flow_ref: torch.Tensor | None = None,
        shift=(0, 0),
        mode: str = "noise",
        residual: bool = True,
        q=None,
        **qparams,
    ) -> FrameOut:
        """`code` with TrainLatents(mode, q, **qparams) (training / evaluation); see `code` for the output."""
        return self.code(x, x_ref_hat, TrainLatents(mode, q=q, **qparams), flow_ref, shift, residual)

    # ------------------------------------------------------------------ real bitstreams
    @torch.no_grad()
    def compress(
        self,
        x: torch.Tensor,
        x_ref_hat: torch.Tensor,
        flow_ref: torch.Tensor | None = None,
        shift=(0, 0),
        placement: EntropyPlacement | None = None,
        q=None,
    ) -> FrameOut:
        """`code` with EncodeLatents: FrameOut with strings=[flow_y, flow_z, res_y, res_z] (lists of bytes per
        batch item), shapes=[flow_z_hw, res_z_hw], x_hat (clamped to [0, 1], equal to decompress's),
        prediction, likelihoods (the rounded latents': the bit estimate)."""
        return self.code(x, x_ref_hat, EncodeLatents(placement, q=q), flow_ref, shift)

    @torch.no_grad()
    def decompress(
        self,
        strings: list,
        shapes,
        x_ref_hat: torch.Tensor,
        shift=(0, 0),
        placement: EntropyPlacement | None = None,
        q=None,
    ) -> FrameOut:
        """Inverse of `compress` given the same reference, shift and q -> FrameOut with x_hat (B,3,H,W) clamped to
        [0, 1], prediction, flow_hat, sigma."""
        latents = DecodeLatents.from_packet(self.LATENTS, strings, shapes, placement, q)
        return self.code(None, x_ref_hat, latents, None, shift)

    def update(self, force: bool = True, update_quantiles: bool = False) -> bool:
        """Build the CDF tables of both bottlenecks."""
        a = self.flow_bottleneck.update(force=force, update_quantiles=update_quantiles)
        b = self.res_bottleneck.update(force=force, update_quantiles=update_quantiles)
        return a or b

    def aux_loss(self) -> torch.Tensor:
        return self.flow_bottleneck.aux_loss() + self.res_bottleneck.aux_loss()


__all__ = ["PFrameCodec", "ResidualGenerator"]
