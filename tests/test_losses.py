import math

import pytest
import torch

from gvc.errors import MissingWeightsError
from gvc.losses import LPIPSLoss, bpp, flow_loss, gan_d_loss, gan_g_loss, mse, rate_bits


def test_rate_bits_and_bpp():
    lik = {"y": torch.full((2, 4, 2, 2), 0.5), "z": torch.full((2, 1, 1, 1), 0.25)}
    lik["y"][1] = 0.125
    bits = rate_bits(lik)
    assert torch.allclose(bits, torch.tensor([16 * 1 + 2.0, 16 * 3 + 2.0]))
    assert torch.allclose(bpp(lik, 64 * 32), bits / 2048)
    with pytest.raises(ValueError):
        rate_bits({})


def test_mse_scale():
    x = torch.zeros(1, 3, 4, 4)
    assert math.isclose(mse(x + 0.1, x).item(), 0.01, rel_tol=1e-5)


def test_gan_losses_signs_and_gradients():
    real = torch.tensor([3.0, 2.0])
    fake = torch.tensor([-3.0, -2.0])
    good_d = gan_d_loss(real, fake)
    bad_d = gan_d_loss(fake, real)
    assert good_d < 0.2 < bad_d
    fake_logits = torch.zeros(4, requires_grad=True)
    gan_g_loss(fake_logits).backward()
    assert torch.all(fake_logits.grad < 0)  # the generator wants D(fake) higher
    f2 = torch.zeros(4, requires_grad=True)
    r2 = torch.zeros(4, requires_grad=True)
    gan_d_loss(r2, f2).backward()
    assert torch.all(r2.grad < 0) and torch.all(f2.grad > 0)
    assert math.isclose(gan_g_loss(torch.zeros(3)).item(), math.log(2), rel_tol=1e-6)


def test_discriminator_training_lowers_d_loss():
    """D loss falls when D learns to separate real from fake (latent-conditioned patch D, tiny)."""
    from gvc.models.discriminator import ConditionalDiscriminator

    torch.manual_seed(0)
    d = ConditionalDiscriminator(
        latent_channels=4, cond_channels=2, widths=[8, 8, 8, 16], in_channels=3, negative_slope=0.2
    )
    opt = torch.optim.Adam(d.parameters(), 2e-3)
    real = torch.rand(2, 3, 32, 32) * 0.5 + 0.5  # bright, noisy
    fake = torch.full((2, 3, 32, 32), 0.3)  # flat, dark
    lat = torch.randn(2, 4, 2, 2)
    first = gan_d_loss(d(real, lat), d(fake, lat)).item()
    for _ in range(40):
        loss = gan_d_loss(d(real, lat), d(fake, lat))
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = gan_d_loss(d(real, lat), d(fake, lat)).item()
    assert first > 1.2 and last < 0.5 * first
    with torch.no_grad():
        assert d(real, lat).mean() > d(fake, lat).mean()
        # and the generator loss on these fakes is now high (D is confident they are fake)
        assert gan_g_loss(d(fake, lat)) > math.log(2)


def test_flow_loss_charbonnier():
    a = torch.zeros(1, 2, 4, 4)
    assert math.isclose(flow_loss(a, a, eps=1e-3).item(), 1e-3, rel_tol=1e-4)
    b = a + 3.0
    assert math.isclose(flow_loss(b, a, eps=1e-3).item(), math.sqrt(9 + 1e-6), rel_tol=1e-6)
    b.requires_grad_(True)
    flow_loss(b, a).backward()
    assert torch.allclose(b.grad, torch.full_like(b, 1 / 32), rtol=1e-3)  # ~L1 gradient far from 0


def test_lpips_missing_weights_raises_before_any_download(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("LPIPSLoss attempted a download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    missing = tmp_path / "alexnet-owt-7be5be79.pth"
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        LPIPSLoss(weights_path=missing, allow_random_init=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "hub")):
        LPIPSLoss(weights_path=None, allow_random_init=False)


def test_lpips_random_init_frozen_and_loads_given_backbone(tmp_path, caplog):
    import torchvision

    torch.manual_seed(0)
    # at the module's own logger: a training-CLI test in the same process may have raised its level
    with caplog.at_level("WARNING", logger="gvc.losses"):
        loss = LPIPSLoss(allow_random_init=True, weights_path=tmp_path / "absent.pth")
    assert "RANDOM" in caplog.text
    assert all(not p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.net.training
    x = torch.rand(1, 3, 64, 64)
    assert loss(x, x).item() < 1e-6
    x_hat = x.clone().requires_grad_(True)
    d = loss(x_hat + 0.1 * torch.randn_like(x), x)
    assert d.item() > 0
    d.backward()
    assert x_hat.grad.abs().sum() > 0  # gradients flow to the generator output, not to LPIPS
    # a backbone file given in config is what the net uses
    alex = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(alex.state_dict(), path)
    loaded = LPIPSLoss(weights_path=path, allow_random_init=False)
    assert loaded.pretrained_backbone
    assert torch.equal(getattr(loaded.net.net.slice1, "0").weight, alex.features[0].weight)
    assert torch.equal(getattr(loaded.net.net.slice5, "10").weight, alex.features[10].weight)
