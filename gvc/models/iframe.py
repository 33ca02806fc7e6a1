"""I-frame codec [HiFiC]: E_I (g_a), G_I (g_s), mean-scale hyperprior bottleneck.

Frames are float (B, 3, H, W) RGB in [0, 1]; H and W must be multiples of 64 for the paper sizes (in general
2^(len(channels)-1) * 4); the codec layer pads before calling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gvc.models.bottleneck import EntropyPlacement, HyperpriorBottleneck
from gvc.models.config import derive_config
from gvc.models.latents import (
    CodedLatents,
    DecodeLatents,
    EncodeLatents,
    FrameOut,
    LatentCoding,
    TrainLatents,
)
from gvc.models.layers import ConvNormAct, DeconvNormAct, ResidualBlock, check_norm, conv, deconv, plain_norm


class Encoder(nn.Module):
    """E_I: conv7x7 channels[0] s1 CN ReLU (the "stem"); per later width conv3x3 s2 CN ReLU; conv3x3 to
    latent_channels [HiFiC].

    (B, in_channels, H, W) -> (B, latent_channels, H / 2^(len(channels)-1), W / 2^(len(channels)-1)).
    The input is first mapped by x * input_scale + input_offset (E_I: 2, -1 maps [0,1] frames to [-1,1]).
    Options for small models (gvc.models.layers): `norm` (channel | gdn | none), `kernel_size` of the stride-2
    convs, `stem` (False: no full-resolution layer; the first stride-2 conv reads the input and channels[0] is
    unused).
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        latent_channels: int,
        norm_eps: float = 1e-3,
        input_scale: float = 1.0,
        input_offset: float = 0.0,
        norm: str = "channel",
        kernel_size: int = 3,
        stem: bool = True,
    ):
        super().__init__()
        self.input_scale = float(input_scale)
        self.input_offset = float(input_offset)
        channels = list(channels)
        if stem:
            layers: list[nn.Module] = [ConvNormAct(in_channels, channels[0], 7, 1, norm_eps, norm)]
            widths = channels
        else:
            layers = []
            widths = [in_channels, *channels[1:]]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers.append(ConvNormAct(c_in, c_out, kernel_size, 2, norm_eps, norm))
        layers.append(conv(channels[-1], latent_channels, 3))
        self.net = nn.Sequential(*layers)
        self.downsampling = 2 ** (len(channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.input_scale + self.input_offset)


class Generator(nn.Module):
    """G_I: CN, conv3x3 to channels[-1], CN; residual blocks with a global skip; per width (reversed, after the
    last) deconv3x3 s2 CN ReLU; conv7x7 to out_channels [HiFiC].

    Input (B, latent_channels + extra_latent_channels, h, w) (e.g. [y_res_hat, y_free] concatenated on channels)
    -> (B, out_channels, h * 2^(len(channels)-1), ...). Output is not clamped.
    Options for small models, mirroring Encoder's: `norm` (with "gdn" / "none" the head has no ChannelNorm, so
    G responds to the latent's magnitude, not only its direction per position), `kernel_size` of the
    transposed convs, `stem` (False: the last transposed conv writes out_channels; no full-resolution conv).
    `output_layer` is the last conv (its weights set the initial output scale).
    """

    def __init__(
        self,
        latent_channels: int,
        channels: Sequence[int],
        num_residual_blocks: int,
        out_channels: int = 3,
        extra_latent_channels: int = 0,
        norm_eps: float = 1e-3,
        norm: str = "channel",
        kernel_size: int = 3,
        stem: bool = True,
    ):
        super().__init__()
        channels = list(channels)
        c_in = latent_channels + extra_latent_channels
        top = channels[-1]
        self.head = nn.Sequential(
            plain_norm(norm, c_in, norm_eps), conv(c_in, top, 3), plain_norm(norm, top, norm_eps)
        )
        self.blocks = nn.Sequential(*[ResidualBlock(top, norm_eps, norm) for _ in range(num_residual_blocks)])
        rev = channels[::-1]
        if stem:
            self.up = nn.Sequential(
                *[DeconvNormAct(a, b, kernel_size, norm_eps, norm) for a, b in zip(rev[:-1], rev[1:])]
            )
            self.tail = conv(channels[0], out_channels, 7)
        else:
            inner = rev[:-1]
            ups: list[nn.Module] = [
                DeconvNormAct(a, b, kernel_size, norm_eps, norm) for a, b in zip(inner[:-1], inner[1:])
            ]
            self.up = nn.Sequential(*ups, deconv(inner[-1], out_channels, kernel_size))
            self.tail = nn.Identity()
        self.upsampling = 2 ** (len(channels) - 1)

    @property
    def output_layer(self) -> nn.Module:
        """The last conv (the stem's conv7x7, or the last transposed conv without the stem); a property, so the
        state dict keeps one name per weight."""
        return self.up[-1] if isinstance(self.tail, nn.Identity) else self.tail

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h = self.head(y)
        h = h + self.blocks(h)
        return self.tail(self.up(h))


class IFrameCodec(nn.Module):
    """Learned image codec for I-frames: x (B,3,H,W) in [0,1] -> y = g_a(x) -> bottleneck -> x_hat = g_s(y_hat).

    Keyword-only arguments without defaults (conf/model/*.yaml gives them); they are kept in `self.config`
    (JSON, gvc.models.config.derive_config) so a model file can rebuild the module. norm / kernel_size / stem
    select the transform (Encoder, Generator): HiFiC's is "channel" / 3 / True, which is also what model files
    written before these options existed hold (gvc.models.config.LEGACY_CONFIG). rate_levels >= 2 makes a
    variable-rate codec (gvc.models.gains; rate_gain_init the lowest and highest level's initial gain;
    rate_gain_hyper: the hyper-latent z gets level gains too, see HyperpriorBottleneck): every call then takes a
    quality level q in [0, rate_levels - 1]; 0 codes one rate (q None).
    """

    def __init__(
        self,
        *,
        channels: Sequence[int],
        latent_channels: int,
        num_residual_blocks: int,
        hyper_channels: int,
        in_channels: int,
        norm_eps: float,
        scale_min: float,
        scale_max: float,
        scale_levels: int,
        norm: str,
        kernel_size: int,
        stem: bool,
        rate_levels: int,
        rate_gain_init: Sequence[float],
        rate_gain_hyper: bool,
    ):
        super().__init__()
        check_norm(norm)
        self.config = derive_config(IFrameCodec.__init__, locals())
        transform = {"norm": norm, "kernel_size": int(kernel_size), "stem": bool(stem)}
        self.g_a = Encoder(
            in_channels, channels, latent_channels, norm_eps, input_scale=2.0, input_offset=-1.0, **transform
        )
        self.g_s = Generator(
            latent_channels, channels, num_residual_blocks, in_channels, 0, norm_eps, **transform
        )
        self.bottleneck = HyperpriorBottleneck(
            latent_channels,
            hyper_channels,
            scale_min,
            scale_max,
            scale_levels,
            rate_levels,
            rate_gain_init,
            rate_gain_hyper,
        )
        self.size_multiple = self.g_a.downsampling * self.bottleneck.downsampling

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless x is (B, C, H, W) with H, W multiples of `size_multiple` (64 by default)."""
        m = self.size_multiple
        if x.dim() != 4 or x.shape[1] != self.config["in_channels"] or x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(
                f"IFrameCodec expects (B, {self.config['in_channels']}, H, W) with H, W multiples of {m}, "
                f"got {tuple(x.shape)}; pad the frame first (the codec layer does)"
            )

    def code(self, x: torch.Tensor | None, latents: LatentCoding, synthesize: bool = True) -> FrameOut:
        """The I-frame pipeline, once for training, encoding and decoding: y = g_a(x) -> latent "" coded by
        `latents` (gvc.models.latents) -> x_hat = g_s(y_hat). x (B, 3, H, W) in [0, 1], None when decoding
        (g_a never runs).

        -> FrameOut(frame_type "I", x_hat (B, 3, H, W): not clamped when training, clamped to [0, 1] with a
        bitstream strategy (the decoder's frame), None with synthesize=False; y_hat; likelihoods {"y", "z"} and
        likelihoods_q (the rounded latents'); strings [y, z] and shapes [(h_z, w_z)] when coding a file).
        """
        if latents.encodes:
            self.check_input(x)
        coded = CodedLatents()
        lat = coded.add("", latents.code("", self.bottleneck, lambda: self.g_a(x)))
        x_hat = self.g_s(lat.y_hat) if synthesize else None
        if x_hat is not None and latents.bitstream:
            x_hat = x_hat.clamp(0.0, 1.0)
        return FrameOut("I", x_hat, y_hat=lat.y_hat, **coded.fields())

    @property
    def rate_levels(self) -> int:
        """Trained quality levels (0: a single-rate codec)."""
        return self.bottleneck.rate_levels

    def forward(self, x: torch.Tensor, mode: str = "noise", q=None, **qparams) -> FrameOut:
        """x (B,3,H,W) in [0,1] -> FrameOut(x_hat (unclamped), likelihoods={"y","z"}, likelihoods_q (rounded
        latents, no gradient: what the file carries), y_hat) by `code` with TrainLatents(mode, q). See
        HyperpriorBottleneck.forward for the modes; mode="round" gives exactly what compress/decompress give."""
        return self.code(x, TrainLatents(mode, q=q, **qparams))

    @torch.no_grad()
    def compress(self, x: torch.Tensor, placement: EntropyPlacement | None = None, q=None) -> dict:
        """compressai's compress protocol (benchmarks call gvc and compressai models alike): x (B,3,H,W) in [0,1]
        -> dict(strings=[y_strings, z_strings], shape=(h_z, w_z), y_hat, likelihoods (the rounded latents': the
        bit estimate)); no synthesis. The coder calls `code` with EncodeLatents itself."""
        out = self.code(x, EncodeLatents(placement, q=q), synthesize=False)
        return {
            "strings": list(out.strings),
            "shape": out.shapes[0],
            "y_hat": out.y_hat,
            "likelihoods": dict(out.likelihoods_q),
        }

    @torch.no_grad()
    def decompress(self, strings: list, shape, placement: EntropyPlacement | None = None, q=None) -> dict:
        """Inverse of compress (compressai's protocol) -> dict(x_hat (B,3,H,W) clamped to [0,1], y_hat)."""
        out = self.code(None, DecodeLatents.from_packet([""], strings, [shape], placement, q))
        return {"x_hat": out.x_hat, "y_hat": out.y_hat}

    def update(self, force: bool = True, update_quantiles: bool = False) -> bool:
        """Build entropy-coder CDFs; see HyperpriorBottleneck.update."""
        return self.bottleneck.update(force=force, update_quantiles=update_quantiles)

    def aux_loss(self) -> torch.Tensor:
        return self.bottleneck.aux_loss()
