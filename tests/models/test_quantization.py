import math

import pytest
import torch

from gvc.models.quantization import (
    kumaraswamy_noise,
    quantize,
    soft_round,
    soft_round_conditional_mean,
    soft_round_inverse,
    ste_round,
)


def test_ste_round_values_and_identity_gradient():
    x = torch.tensor([-1.6, -0.4, 0.2, 0.51, 2.49], requires_grad=True)
    y = ste_round(x)
    assert torch.equal(y.detach(), torch.round(x.detach()))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_round_and_ste_round_around_means():
    x = torch.tensor([0.3, 0.7, -1.2, 2.9])
    mu = torch.tensor([0.4, 0.4, -0.1, 0.5])
    expected = torch.round(x - mu) + mu  # the decoder's value: integer offset from the mean
    assert torch.equal(quantize(x, "round", mu), expected)
    assert torch.equal(quantize(x, "ste", mu), expected)
    assert not torch.equal(quantize(x, "round"), expected)  # the mean matters


def test_noise_is_uniform_within_half():
    torch.manual_seed(0)
    x = torch.zeros(200_000)
    n = quantize(x, "noise")
    assert n.abs().max() <= 0.5
    assert abs(n.mean().item()) < 0.01
    assert abs(n.var().item() - 1 / 12) < 2e-3


def test_soft_round_limits_and_inverse():
    x = torch.linspace(-3, 3, 601)
    # T -> 0: hard rounding (away from the .5 boundaries); T large: ~identity
    away = (x - torch.floor(x) - 0.5).abs() > 0.05
    assert torch.allclose(soft_round(x, 0.01)[away], torch.round(x)[away], atol=1e-3)
    assert torch.allclose(soft_round(x, 50.0), x, atol=1e-3)
    # monotone and invertible
    for t in (0.1, 0.3, 1.0):
        s = soft_round(x, t)
        assert torch.all(s[1:] >= s[:-1])
        assert torch.allclose(soft_round_inverse(s, t), x, atol=2e-3)


def test_kumaraswamy_a1_is_uniform_and_a2_is_peaked():
    torch.manual_seed(0)
    like = torch.zeros(200_000)
    u = kumaraswamy_noise(like, 1.0)
    k = kumaraswamy_noise(like, 2.0)
    assert u.min() >= -0.5 and u.max() <= 0.5 and k.min() >= -0.5 and k.max() <= 0.5
    assert abs(u.var().item() - 1 / 12) < 2e-3
    assert k.var().item() < u.var().item() - 0.01  # a > 1 concentrates the noise
    # b chosen so the mode sits at 0 (noise centred on the rounded value): the density peaks near 0
    hist = torch.histc(k, bins=10, min=-0.5, max=0.5)
    assert hist.argmax().item() in (4, 5)


def test_softround_kumaraswamy_quantizer_properties():
    torch.manual_seed(0)
    x = torch.randn(50_000) * 3
    x.requires_grad_(True)
    q = quantize(x, "softround_kumaraswamy", temperature=0.3, kumaraswamy_a=2.0)
    assert torch.isfinite(q).all()
    # stays within about one bin of x and its gradient is finite and non-zero
    assert (q - x).abs().max().item() < 1.0
    q.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().mean() > 0.1
    # T -> 0: s_T -> round, and r_T maps round(x) + n (|n| < 0.5) back to round(x): hard quantization
    with torch.no_grad():
        q_cold = quantize(x, "softround_kumaraswamy", temperature=0.02, kumaraswamy_a=1.0)
    assert ((q_cold - torch.round(x)).abs() < 0.05).float().mean() > 0.9


def test_conditional_mean_formula():
    t = 0.3
    z = torch.tensor([0.2, 0.9, -1.4])
    expected = soft_round_inverse(z - 0.5, t) + 0.5
    assert torch.allclose(soft_round_conditional_mean(z, t), expected)
    m = torch.floor(z - 0.5) + 0.5
    manual = m + t * torch.atanh(2 * math.tanh(1 / (2 * t)) * (z - 0.5 - m)) + 0.5
    assert torch.allclose(expected, manual, atol=1e-5)


def test_unknown_mode_and_bad_params_raise():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="unknown quantization mode"):
        quantize(x, "bogus")
    with pytest.raises(ValueError, match="temperature"):
        quantize(x, "softround_kumaraswamy", temperature=0.0)
