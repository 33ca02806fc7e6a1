"""Variable-rate latents (gvc.models.gains): gains that rise with the level, a rate that rises with q, one
pipeline for every q (training round mode == the bitstream), and q required exactly when the model has levels."""

from __future__ import annotations

import math

import pytest
import torch

from gvc.models.gains import RateGains
from gvc.models.iframe import IFrameCodec
from gvc.models.pframe import PFrameCodec
from gvc.models.video import VideoCodec
from tests._training_helpers import model_kwargs

LEVELS = 4


def _codecs(levels: int = LEVELS, hyper: bool = False) -> tuple[IFrameCodec, PFrameCodec]:
    i_kw, p_kw = model_kwargs("smoke")
    torch.manual_seed(0)
    iframe = IFrameCodec(**{**i_kw, "rate_levels": levels, "rate_gain_hyper": hyper})
    # latents of a few units, so even the lowest level's gain leaves some of them nonzero
    with torch.no_grad():
        iframe.g_a.net[-1].weight.mul_(20.0)
    pframe = PFrameCodec(**{**p_kw, "rate_levels": levels, "rate_gain_hyper": hyper, "flow_input": False})
    pframe.init_from_iframe(iframe, copy_bottleneck=True)
    for m in (iframe, pframe):
        m.update()
        m.eval()
    return iframe, pframe


def _frames(n: int = 2, size: int = 64) -> torch.Tensor:
    """Smooth textured frames (B, 3, size, size) in [0, 1]."""
    g = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        f = torch.rand(3, 1, 1, generator=g) * 4 + 1
        p = torch.rand(3, 1, 1, generator=g) * 6
        img = 0.5 + 0.35 * torch.sin(f * 6.28 * xx + p) * torch.cos(f * 3.1 * yy - p)
        out.append((img + 0.05 * torch.rand(3, size, size, generator=g)).clamp(0, 1))
    return torch.stack(out)


def test_gains_start_log_spaced_interpolate_in_log_and_move_only_with_their_levels_items():
    gains = RateGains(6, 5, (0.5, 2.0))
    assert torch.allclose(gains.log_gains()[:, 0].exp(), torch.logspace(math.log10(0.5), math.log10(2.0), 6))
    with torch.no_grad():
        gains.log_gain.normal_()
        gains.log_inverse_gain.normal_()
    table = gains.log_gains()
    g, g_inv = gains(torch.tensor([2.0, 2.25, 3.0]))
    assert torch.allclose(g[1, :, 0, 0], (0.75 * table[2] + 0.25 * table[3]).exp())
    assert torch.allclose(g[0, :, 0, 0], table[2].exp()) and torch.allclose(g[2, :, 0, 0], table[3].exp())
    assert torch.allclose(g_inv[0, :, 0, 0], gains.log_inverse_gain[2].exp())
    # an item at level 2 moves level 2's vectors only; one at 2.25 levels 2 and 3
    for q, rows in ((2.0, {2}), (2.25, {2, 3})):
        gains.zero_grad()
        g, g_inv = gains(torch.tensor([q]))
        (g.sum() + g_inv.sum()).backward()
        for param in (gains.log_gain, gains.log_inverse_gain):
            touched = {k for k in range(6) if bool(param.grad[k].abs().sum() > 0)}
            assert touched == rows, (q, touched)


def test_hyper_latent_gains_start_at_the_inverse_of_ys():
    """rate_gain_hyper: z = h_a(y * g) gets its own level gains, starting at 1 / y's, so z enters the one
    factorized prior at one scale for every level; without the option there are none (old model files)."""
    iframe, pframe = _codecs(hyper=True)
    for b in (iframe.bottleneck, pframe.flow_bottleneck, pframe.res_bottleneck):
        assert b.z_gains is not None
        assert torch.allclose(
            b.z_gains.log_gains(), -b.gains.log_gains()[:, :1].expand_as(b.z_gains.log_gains())
        )
    assert _codecs(hyper=False)[0].bottleneck.z_gains is None


@pytest.mark.parametrize("hyper", [False, True])
def test_rate_rises_strictly_with_q(hyper):
    iframe, _ = _codecs(hyper=hyper)
    x = _frames()
    bits = []
    with torch.no_grad():
        for q in torch.linspace(0, LEVELS - 1, 13).tolist():
            bits.append(iframe(x, mode="round", q=q).estimated_bits())
    assert all(b > a for a, b in zip(bits, bits[1:])), bits
    assert bits[-1] > 1.3 * bits[0]


@pytest.mark.parametrize("hyper", [False, True])
def test_bitstream_equals_round_mode_at_a_fractional_level(hyper):
    iframe, pframe = _codecs(hyper=hyper)
    video = VideoCodec(iframe, pframe, freeze_iframe=True)
    x = _frames(2)
    q = 1.375
    with torch.no_grad():
        comp = iframe.compress(x[:1], q=q)
        dec = iframe.decompress(comp["strings"], comp["shape"], q=q)
        ref = iframe(x[:1], mode="round", q=q)
        assert torch.equal(dec["y_hat"], ref.y_hat)
        assert torch.equal(dec["x_hat"], ref.x_hat.clamp(0, 1))
        # another q reads the same strings into other latents: q is part of what the decoder needs
        other = iframe.decompress(comp["strings"], comp["shape"], q=2.0)
        assert not torch.equal(other["y_hat"], dec["y_hat"])
        # a P-frame: both latents at q, the decoder in lock step with the encoder
        enc = video.compress_frame(x[1:], ref=dec["x_hat"], frame_index=1, q=q)
        back = video.decompress_frame(list(enc.strings), enc.shapes, ref=dec["x_hat"], frame_index=1, q=q)
        assert torch.equal(back.x_hat, enc.x_hat)


def test_quality_level_required_exactly_when_the_model_has_levels():
    iframe, _ = _codecs()
    single, _ = _codecs(levels=0)
    x = _frames(1)
    with pytest.raises(ValueError, match="codes 4 rate levels: give a quality level"):
        iframe(x, mode="round")
    with pytest.raises(ValueError, match="codes one rate"):
        single(x, mode="round", q=1.0)
    with pytest.raises(ValueError, match=r"q must be in \[0, 3\]"):
        iframe(x, mode="round", q=3.5)
    with pytest.raises(ValueError, match="rate levels"):
        VideoCodec(iframe, _codecs(levels=3)[1])
