"""IFrameCodec, Encoder/Generator, ConditionalDiscriminator."""

import json

import pytest
import torch
from torch.nn.utils import parametrize

from gvc.models.discriminator import ConditionalDiscriminator
from gvc.models.iframe import Encoder, Generator, IFrameCodec
from gvc.models.layers import ChannelNorm
from tests._training_helpers import model_kwargs

TINY = model_kwargs("smoke")[0]  # channels [8, 16, 16, 24, 32], latent 16, 1 residual block, hyper 16


def test_channel_norm_normalizes_over_channels_per_pixel():
    cn = ChannelNorm(6, eps=1e-3)
    x = torch.randn(2, 6, 5, 7) * 4 + 3
    out = cn(x)
    assert torch.allclose(out.mean(1), torch.zeros(2, 5, 7), atol=1e-5)
    assert torch.allclose(out.var(1, unbiased=False), torch.ones(2, 5, 7), atol=1e-2)
    assert cn.eps == 1e-3 and ChannelNorm(6, eps=0.5).eps == 0.5


def test_shapes_config_and_size_check():
    model = IFrameCodec(**TINY)
    x = torch.rand(2, 3, 64, 128)
    out = model(x)
    assert out.x_hat.shape == x.shape
    assert out.y_hat.shape == (2, 16, 4, 8)
    assert out.likelihoods["z"].shape == (2, 16, 1, 2)
    cfg = json.loads(json.dumps(model.config))  # JSON-serialisable
    rebuilt = IFrameCodec(**cfg)
    rebuilt.load_state_dict(model.state_dict())
    assert model.size_multiple == 64
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.rand(1, 3, 64, 96))


def test_paper_sizes():
    model = IFrameCodec(**model_kwargs("paper")[0])
    assert model.config["channels"] == [60, 120, 240, 480, 960] and model.config["latent_channels"] == 220
    assert len(model.g_s.blocks) == 9
    assert model.g_a.net[-1].out_channels == 220
    assert model.bottleneck.h_a[0].out_channels == 320


def test_reusable_encoder_generator_for_residual_branch():
    enc = Encoder(in_channels=6, channels=[8, 16, 16], latent_channels=5)
    gen = Generator(
        latent_channels=5,
        channels=[8, 16, 16],
        num_residual_blocks=2,
        out_channels=3,
        extra_latent_channels=7,
    )
    y = enc(torch.rand(1, 6, 32, 32))
    assert y.shape == (1, 5, 8, 8)
    assert gen(torch.cat([y, torch.randn(1, 7, 8, 8)], 1)).shape == (1, 3, 32, 32)


def test_compress_decompress_equals_forward_round():
    torch.manual_seed(0)
    model = IFrameCodec(**TINY).eval()
    with torch.no_grad():  # make y non-trivial so many symbols are non-zero
        model.g_a.net[-1].weight.mul_(20)
    model.update(force=True)
    x = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        ref = model(x, mode="round")
    comp = model.compress(x)
    assert len(comp["strings"]) == 2 and all(len(s) == 2 for s in comp["strings"])
    assert all(isinstance(b, bytes) for s in comp["strings"] for b in s)
    dec = model.decompress(comp["strings"], comp["shape"])
    assert torch.equal(dec["y_hat"], ref.y_hat)
    assert torch.equal(comp["y_hat"], ref.y_hat)
    assert torch.allclose(dec["x_hat"], ref.x_hat.clamp(0, 1), atol=1e-6)
    assert dec["x_hat"].min() >= 0 and dec["x_hat"].max() <= 1
    assert (ref.y_hat - ref.y_hat.round()).abs().max() > 0.01  # means really are non-integer
    # deterministic: same input, same bytes
    assert model.compress(x)["strings"] == comp["strings"]


def test_modes_share_the_synthesis_input():
    torch.manual_seed(0)
    model = IFrameCodec(**TINY)
    x = torch.rand(1, 3, 64, 64)
    torch.manual_seed(1)
    ste = model(x, mode="ste")
    noise = model(x, mode="noise")
    rnd = model(x, mode="round")
    # every mode feeds the synthesis the same rounded latent; only the likelihoods differ
    assert torch.allclose(ste.y_hat, rnd.y_hat, atol=1e-5)
    assert torch.allclose(noise.y_hat, rnd.y_hat, atol=1e-5)
    assert not torch.allclose(noise.likelihoods["y"], rnd.likelihoods["y"])


@pytest.mark.ffmpeg
def test_overfitting_one_crop_with_mse_lowers_distortion(carphone_crops):
    torch.manual_seed(0)
    x = carphone_crops(frames=(0,), top=40, left=56, size=64)  # the face region: edges and texture
    model = IFrameCodec(**TINY)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    variance = x.var().item()  # MSE of predicting the mean value
    with torch.no_grad():
        first = torch.mean((model(x).x_hat - x) ** 2).item()
    for _ in range(250):
        loss = torch.mean((model(x, mode="noise").x_hat - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = torch.mean((model(x, mode="round").x_hat.clamp(0, 1) - x) ** 2).item()
    assert last < 0.1 * first
    assert last < 0.35 * variance  # learned structure, not just the mean colour


def test_discriminator_shapes_spectral_norm_and_conditioning():
    torch.manual_seed(0)
    d = ConditionalDiscriminator(
        latent_channels=16, cond_channels=4, widths=[8, 16, 16, 32], in_channels=3, negative_slope=0.2
    ).eval()
    x = torch.rand(2, 3, 64, 64)
    lat = torch.randn(2, 16, 4, 4)
    logits = d(x, lat)
    assert logits.shape == (2, 1, 8, 8)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6 and all(parametrize.is_parametrized(m, "weight") for m in convs)
    assert not torch.allclose(d(x, lat + 1.0), logits)  # the latent conditions the output
    assert not torch.allclose(d(1 - x, lat), logits)
    assert d.config["widths"] == [8, 16, 16, 32]
    # the image enters the body in [-1, 1]: reproduce the forward pass by hand
    cond = torch.nn.functional.leaky_relu(d.cond(lat), 0.2)
    cond = torch.nn.functional.interpolate(cond, size=(64, 64), mode="nearest")
    assert torch.allclose(d.body(torch.cat([x * 2 - 1, cond], 1)), logits, atol=1e-6)
