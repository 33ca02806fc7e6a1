"""PFrameCodec: init from the I-frame codec, one code path for forward/compress/decompress, real bits vs
estimate, switches (free latent, flow input, random shift, stop-gradient)."""

import pytest
import torch

from gvc.data.datasets import make_synthetic_clip
from gvc.models.iframe import IFrameCodec
from gvc.models.pframe import PFrameCodec
from tests._entropy_fit import fit_bottleneck
from tests._training_helpers import dis_flow, model_kwargs


def smoke_kwargs() -> tuple[dict, dict]:
    """The smoke model's I-frame and P-frame kwargs, as conf/model/smoke.yaml sets them."""
    return model_kwargs("smoke")


def make_codecs(seed: int = 0, **overrides) -> tuple[IFrameCodec, PFrameCodec]:
    torch.manual_seed(seed)
    i_kw, p_kw = smoke_kwargs()
    iframe = IFrameCodec(**i_kw)
    pframe = PFrameCodec(**{**p_kw, **overrides})
    pframe.init_from_iframe(iframe)
    iframe.requires_grad_(False)
    return iframe, pframe


def frames(size: int = 64, seed: int = 0):
    clip, _ = make_synthetic_clip(2, size, size, max_flow=2.0, seed=seed)
    x_ref, x = clip[0:1], clip[1:2]
    return x, x_ref, dis_flow("fast")(x_ref, x)


def test_init_from_iframe_makes_g_res_reproduce_g_i():
    """At init, G_res(y, y_free) == G_I(y) for any y_free (zero-initialized free branch), E_res == E_I up to its
    input mapping, and the free latent is E_I of the prediction."""
    iframe, pframe = make_codecs()
    torch.manual_seed(1)
    y = torch.randn(2, 16, 4, 4) * 3
    y_free = torch.randn(2, 16, 4, 4) * 3
    with torch.no_grad():
        assert torch.allclose(pframe.res_generator(y, y_free), iframe.g_s(y), atol=1e-6)
        r = torch.rand(2, 3, 64, 64) * 2 - 1
        assert pframe.config["residual_mapping"] == "unit"  # conf/model/smoke.yaml
        assert torch.allclose(pframe.res_encoder(r), iframe.g_a(r + 0.5), atol=1e-5)
    # training the free branch makes y_free matter
    with torch.no_grad():
        pframe.res_generator.free_conv.weight.normal_()
        assert not torch.allclose(pframe.res_generator(y, y_free), iframe.g_s(y), atol=1e-3)
    with pytest.raises(ValueError, match="differ"):
        PFrameCodec(**{**smoke_kwargs()[1], "latent_channels": 8}).init_from_iframe(iframe)


def test_forward_outputs_and_modes():
    _, pframe = make_codecs()
    x, x_ref, flow_ref = frames()
    for mode, q in (
        ("noise", {}),
        ("ste", {}),
        ("round", {}),
        ("softround_kumaraswamy", {"temperature": 0.3, "kumaraswamy_a": 2.0}),
    ):
        out = pframe(x, x_ref, flow_ref, shift=(3, 7), mode=mode, **q)
        assert set(out.likelihoods) == {"flow_y", "flow_z", "res_y", "res_z"}
        assert out.x_hat.shape == x.shape and out.prediction.shape == x.shape
        assert out.flow_hat.shape == (1, 2, 64, 64) and out.sigma.shape == (1, 1, 64, 64)
        assert (out.sigma >= 0).all()
        assert out.y_res_hat.shape == out.y_free.shape == (1, 16, 4, 4)
        assert out.d_latent.shape == (1, pframe.d_latent_channels, 4, 4) == (1, 32, 4, 4)
        # x_hat = prediction + unshifted residual synthesis
        r_hat = pframe.synthesize_residual(out.y_res_hat, out.y_free, (3, 7))
        assert torch.allclose(out.x_hat, out.prediction + r_hat, atol=1e-6)
    # at init the decoded flow is ~0 and the blur ~0: the prediction is ~ the reference
    assert (out.prediction - x_ref).abs().max() < 0.1


def test_compress_decompress_reproduces_round_forward():
    iframe, pframe = make_codecs()
    pframe.update(force=True)
    x, x_ref, flow_ref = frames()
    shift = (5, 11)
    with torch.no_grad():
        fwd = pframe(x, x_ref, flow_ref, shift=shift, mode="round")
    comp = pframe.compress(x, x_ref, flow_ref, shift)
    assert len(comp.strings) == 4 and len(comp.shapes) == 2
    dec = pframe.decompress(comp.strings, comp.shapes, x_ref, shift)
    assert (dec.x_hat - fwd.x_hat.clamp(0, 1)).abs().max() <= 1e-5
    assert torch.equal(dec.x_hat, comp.x_hat)
    assert torch.allclose(dec.flow_hat, fwd.flow_hat, atol=1e-5)
    # the decoder needs the same shift: another one gives another frame
    other = pframe.decompress(comp.strings, comp.shapes, x_ref, (0, 0))
    assert (other.x_hat - dec.x_hat).abs().max() > 1e-4


def test_real_bits_match_likelihood_estimate():
    """The four strings' sizes match -log2 of forward(mode="round")'s likelihoods within 1% plus the rANS
    coder's fixed overhead (<= 64 bits per string), on nontrivial latents (encoders rescaled to latent std 30,
    entropy models fitted to them; the flow bottleneck first, since it decides the prediction)."""
    _, pframe = make_codecs(flow_head_init_gain=0.0)  # zero decoded flow: the flow latents do not move x_ref
    x, x_ref, flow_ref = frames(size=128, seed=2)
    with torch.no_grad():
        for enc in (pframe.flow_encoder, pframe.res_encoder):
            last = enc.net[-1]
            last.weight.mul_(30.0 / enc(torch.rand(1, enc.net[0][0].in_channels, 128, 128)).std())
        y_flow = pframe.flow_encoder(pframe.flow_encoder_input(x, x_ref, flow_ref))
    fit_bottleneck(pframe.flow_bottleneck, y_flow, 150)
    with torch.no_grad():
        pred = pframe(x, x_ref, flow_ref, mode="round").prediction
        y_res = pframe.res_encoder(x - pred)
    fit_bottleneck(pframe.res_bottleneck, y_res, 150)
    pframe.update(force=True, update_quantiles=True)  # exact z ranges (few z values: no escape codes)
    with torch.no_grad():
        fwd = pframe(x, x_ref, flow_ref, mode="round")
    comp = pframe.compress(x, x_ref, flow_ref, (0, 0))
    for key, strings in zip(("flow_y", "flow_z", "res_y", "res_z"), comp.strings):
        est = (-fwd.likelihoods[key].log2()).sum().item()
        actual = 8 * sum(len(s) for s in strings)
        assert abs(actual - est) <= 0.01 * est + 64, (key, actual, est)
    assert (-fwd.likelihoods["res_y"].log2()).sum() > 3000 and (
        -fwd.likelihoods["flow_y"].log2()
    ).sum() > 1500
    dec = pframe.decompress(comp.strings, comp.shapes, x_ref, (0, 0))
    assert (dec.x_hat - fwd.x_hat.clamp(0, 1)).abs().max() <= 1e-5


def test_shift_rolls_residual_branch_consistently():
    """With the I-frame initialization and a zero free branch the residual codec is convolutional, so coding a
    shifted input and shifting back equals coding the same frame content at another grid phase; the random-shift
    switch off makes every shift a no-op."""
    _, pframe = make_codecs()
    x, x_ref, flow_ref = frames()
    with torch.no_grad():
        a = pframe(x, x_ref, flow_ref, shift=(0, 0), mode="round")
        b = pframe(x, x_ref, flow_ref, shift=(4, 9), mode="round")
    assert b.shift == (4, 9)
    assert torch.allclose(a.prediction, b.prediction)  # the flow branch is not shifted
    assert (a.x_hat - b.x_hat).abs().max() > 1e-4  # another latent grid phase: another reconstruction
    assert pframe.effective_shift((20, 33)) == (4, 1)
    _, off = make_codecs(random_shift=False)
    with torch.no_grad():
        c = off(x, x_ref, flow_ref, shift=(0, 0), mode="round")
        d = off(x, x_ref, flow_ref, shift=(4, 9), mode="round")
    assert d.shift == (0, 0) and torch.equal(c.x_hat, d.x_hat)
    assert off.shift_for_frame(7) == (0, 0) and pframe.shift_for_frame(7) == pframe.shift_for_frame(7)


def test_switches_free_latent_and_flow_input():
    _, nofree = make_codecs(free_latent=False)
    x, x_ref, flow_ref = frames()
    out = nofree(x, x_ref, flow_ref, mode="noise")
    assert out.y_free is None and nofree.d_latent_channels == 16 and out.d_latent.shape[1] == 16
    assert not hasattr(nofree.res_generator, "free_conv")
    _, noflow = make_codecs(flow_input=False)
    assert noflow.flow_encoder.net[0][0].in_channels == 6
    out = noflow(x, x_ref, None, mode="noise")  # no flow_ref needed
    assert torch.isfinite(out.x_hat).all()
    _, withflow = make_codecs()
    assert withflow.flow_encoder.net[0][0].in_channels == 8
    with pytest.raises(ValueError, match="flow_ref"):
        withflow(x, x_ref, None)
    # the free latent needs the I-frame encoder
    p_kw = smoke_kwargs()[1]
    with pytest.raises(RuntimeError, match="attach"):
        PFrameCodec(**p_kw)(x, x_ref, flow_ref)


def test_stop_gradients_into_reference():
    """The flow codec never sends gradient into x_ref_hat; the warp does unless detach_reference is on."""
    _, pframe = make_codecs()
    x, x_ref, flow_ref = frames()
    ref = x_ref.clone().requires_grad_(True)
    pframe(x, ref, flow_ref, mode="noise").x_hat.square().sum().backward()
    assert ref.grad is not None and ref.grad.abs().sum() > 0
    _, sg = make_codecs(detach_reference=True)
    ref = x_ref.clone().requires_grad_(True)
    out = sg(x, ref, flow_ref, mode="noise")
    loss = out.x_hat.square().sum() + sum((-v.log2()).sum() for v in out.likelihoods.values())
    loss.backward()
    assert ref.grad is None
    assert sg.flow_encoder.net[0][0].weight.grad.abs().sum() > 0  # the flow codec still trains


def test_config_is_json_and_rebuilds():
    import json

    _, pframe = make_codecs()
    cfg = json.loads(json.dumps(pframe.config))
    again = PFrameCodec(**cfg)
    assert again.config == pframe.config
    assert set(again.state_dict()) == set(pframe.state_dict())
    assert not any(k.startswith("_free") or "g_a" in k for k in pframe.state_dict())
