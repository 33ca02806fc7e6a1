"""gvc.training.update.TrainingUpdate on its own (no Lightning): the non-finite guard, the aux step, clipping, the
GAN switch, the lr schedule and the rate controller's feed."""

from __future__ import annotations

import io

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gvc.errors import ConfigError, TrainingError
from gvc.objectives import IFrameObjective, LossWeights
from gvc.training.update import TrainingUpdate, instantiate_optimizers, stage_lr
from tests._training_helpers import CONF


def _conf(group: str, name: str, **overrides) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{name}.yaml"), resolve=True)
    return {**cfg, **overrides}


class _Fixture:
    """The smoke I-frame codec, its D, the GAN objective and a controller; `losses(x)` runs the forward."""

    def __init__(self, gan: bool = True, **stage):
        torch.manual_seed(0)
        model = OmegaConf.load(CONF / "model" / "smoke.yaml")
        self.codec = instantiate(model.iframe, _convert_="all").train()
        self.disc = instantiate(model.discriminator_i, _convert_="all").train() if gan else None
        self.controller = instantiate(OmegaConf.load(CONF / "rate" / "proportional.yaml"))
        weights = LossWeights.from_config(_conf("loss", "gan", w_lpips=0.0, gan=gan))
        self.objective = IFrameObjective(weights, None)
        self.update = TrainingUpdate(
            instantiate_optimizers(_conf("stage", "iframe", **stage), instantiate),
            self.controller,
            self.codec.named_parameters(),
            self.disc,
        )
        self.d_calls = 0

    def losses(self, x: torch.Tensor, scale: float = 1.0):
        """(g_loss, aux_loss, d_loss_fn, bpp_q) of one forward on x (B, 3, H, W)."""
        self.update.freeze_discriminator()
        out = self.codec(x, mode="noise")
        d = self.disc if self.update.gan_active else None
        terms = self.objective(x, out, self.controller.lambda_r, d)

        def d_loss_fn():
            self.d_calls += 1
            return self.objective.discriminator_loss(self.disc, x, out)

        return scale * terms.loss, self.codec.aux_loss(), d_loss_fn, terms.bpp_q

    def params(self) -> dict[str, torch.Tensor]:
        named = dict(self.codec.named_parameters(prefix="codec"))
        if self.disc is not None:
            named.update(self.disc.named_parameters(prefix="disc"))
        return {k: v.detach().clone() for k, v in named.items()}


def _x(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _optimizer_bytes(opts) -> list[bytes]:
    """Each optimizer's state_dict serialised (step counts, moments, param groups)."""
    out = []
    for o in opts:
        buf = io.BytesIO()
        torch.save(o.state_dict(), buf)
        out.append(buf.getvalue())
    return out


def _moved(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_a_non_finite_step_is_skipped_with_no_optimizer_change_and_counted():
    f = _Fixture(warmup_steps=0, max_nonfinite_in_a_row=2)
    f.update(*f.losses(_x(0)))  # one good step: Adam has state
    before = f.params()
    states = _optimizer_bytes(f.update.optimizers)
    lam, f.d_calls = f.controller.lambda_r, 0
    x = _x(1)
    x[0, 0, 5, 5] = float("nan")
    r = f.update(*f.losses(x))
    assert not r.applied and r.skipped == "generator loss or gradient" and r.step == 1
    assert r.nonfinite_total == 1 and r.nonfinite_in_a_row == 1 and r.bpp is None
    assert _moved(before, f.params()) == set()
    assert _optimizer_bytes(f.update.optimizers) == states  # Adam's step counts and moments untouched
    assert f.controller.lambda_r == lam and f.d_calls == 0
    assert all(p.grad is None for p in f.update.g_params + f.update.aux_params)  # no stale gradient left
    with pytest.raises(TrainingError, match="2 training steps in a row"):
        f.update(*f.losses(x))
    assert f.update.step == 1 and f.update.nonfinite_total == 2


def test_the_aux_step_moves_only_the_quantiles():
    f = _Fixture(gan=False)
    g_loss, aux, _, bpp = f.losses(_x())
    before = f.params()
    r = f.update(0.0 * g_loss, aux, None, bpp)  # G's gradient is zero: Adam does not move G
    assert r.applied and r.aux_loss > 0
    moved = _moved(before, f.params())
    assert moved and all(k.endswith("quantiles") for k in moved)


def test_clipping_caps_the_generator_norm():
    f = _Fixture(gan=False, grad_clip=1.0)
    g_loss, aux, _, bpp = f.losses(_x(), scale=1e4)
    r = f.update(g_loss, aux, None, bpp)
    assert r.grad_norm > 1.0 and r.grad_clipped is True
    clipped = torch.nn.utils.get_total_norm([p.grad for p in f.update.g_params if p.grad is not None])
    assert float(clipped) == pytest.approx(1.0, rel=1e-4)
    off = _Fixture(gan=False, grad_clip=0.0)
    r = off.update(*off.losses(_x(), scale=1e4))
    assert r.grad_clipped is None and r.grad_norm > 1.0
    norm = torch.nn.utils.get_total_norm([p.grad for p in off.update.g_params if p.grad is not None])
    assert float(norm) == pytest.approx(r.grad_norm, rel=1e-4)  # unclipped


def test_the_discriminator_is_stepped_only_when_the_gan_is_active():
    f = _Fixture(warmup_steps=2)
    for step in range(3):
        before = f.params()
        r = f.update(*f.losses(_x(step)))
        moved = {k.split(".")[0] for k in _moved(before, f.params())}
        if step < 2:
            assert not r.gan_active and r.d_loss is None and moved == {"codec"} and f.d_calls == 0
        else:
            assert r.gan_active and r.d_loss is not None and moved == {"codec", "disc"} and f.d_calls == 1
    assert not any(p.requires_grad for p in f.disc.parameters())  # frozen again for the next G step


def test_lr_schedule_groups_and_controller_feed():
    schedule = {
        "_target_": "gvc.training.schedule.lr_factor",
        "_partial_": True,
        "milestones": [1],
        "gamma": 0.5,
    }
    f = _Fixture(warmup_steps=0, lr_schedule=schedule)
    g, aux, d = f.update.optimizers
    f.update(*f.losses(_x(0)))
    assert g.param_groups[0]["lr"] == pytest.approx(1e-4) and d.param_groups[0]["lr"] == pytest.approx(1e-4)
    f.update(*f.losses(_x(1)))  # step 1: past the milestone
    assert g.param_groups[0]["lr"] == pytest.approx(5e-5) and d.param_groups[0]["lr"] == pytest.approx(5e-5)
    assert aux.param_groups[0]["lr"] == pytest.approx(1e-3)  # the aux lr stays
    # stage 2's residual codec gets its own group (stage.residual_lr)
    base = stage_lr({"lr": 1e-4, "residual_lr": 3e-5}, residual_prefix="res_")
    assert (base("res_g_a.0.weight"), base("flow_g_a.0.weight")) == (3e-5, 1e-4)
    # the controller is fed the bpp from controller_from_step on, and lambda_R moves then
    h = _Fixture(gan=False)
    h.update.controller_from_step = 1
    lam = h.controller.lambda_r
    r0 = h.update(*h.losses(_x(0)))
    assert r0.bpp is None and h.controller.lambda_r == lam and h.controller.bpp_ema is None
    r1 = h.update(*h.losses(_x(1)))
    assert r1.bpp > 0 and h.controller.bpp_ema == pytest.approx(
        r1.bpp
    )  # the first measurement starts the EMA
    assert r1.lambda_r == h.controller.lambda_r != lam


def test_optimizers_are_the_stage_config_nodes_and_old_states_load():
    """stage.optimizer.g / aux / d (`_target_`, `_partial_`) choose the optimizers, at the stage's lrs; an unbuilt
    node is refused; a state saved by the optimizers the update built before the nodes existed (Adam with
    betas=(0.9, 0.999) on G and D, default Adam on aux) loads and steps on the same."""
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "momentum": 0.5}
    stage = _conf("stage", "iframe")
    f = _Fixture(optimizer={**stage["optimizer"], "d": sgd}, d_lr=3e-3)
    g, aux, d = f.update.optimizers
    assert type(g) is torch.optim.Adam and g.param_groups[0]["betas"] == (0.9, 0.999)
    assert type(d) is torch.optim.SGD and d.param_groups[0]["momentum"] == 0.5
    assert d.param_groups[0]["lr"] == 3e-3 and aux.param_groups[0]["lr"] == stage["aux_lr"]
    with pytest.raises(ConfigError, match="stage.optimizer.g is .* not a built optimizer"):
        TrainingUpdate(stage, f.controller, f.codec.named_parameters(), f.disc)

    new = _Fixture(warmup_steps=0)
    old = _Fixture(warmup_steps=0)
    groups = [{**grp, "params": list(grp["params"])} for grp in old.update.optimizers[0].param_groups]
    old_opts = [  # what build_optimizers made before the config nodes (fresh, same parameters)
        torch.optim.Adam(groups, lr=old.update.lr, betas=(0.9, 0.999)),
        torch.optim.Adam(old.update.aux_params, lr=old.update.aux_lr),
        torch.optim.Adam(old.disc.parameters(), lr=old.update.d_lr, betas=(0.9, 0.999)),
    ]
    old.update.optimizers = old_opts
    old.update(*old.losses(_x(0)))
    for opt, saved in zip(new.update.optimizers, _optimizer_bytes(old_opts)):  # as a checkpoint carries them
        opt.load_state_dict(torch.load(io.BytesIO(saved), weights_only=True))
    new.codec.load_state_dict(old.codec.state_dict())
    new.disc.load_state_dict(old.disc.state_dict())
    gen = torch.Generator().manual_seed(2)
    for o, n in zip(old_opts, new.update.optimizers):  # the same gradients, one more step each
        for go, gn in zip(o.param_groups, n.param_groups):
            assert {k: v for k, v in go.items() if k != "params"} == {
                k: v for k, v in gn.items() if k != "params"
            }
            for po, pn in zip(go["params"], gn["params"]):
                po.grad = torch.randn(po.shape, generator=gen)
                pn.grad = po.grad.clone()
        o.step()
        n.step()
    assert _moved(old.params(), new.params()) == set()  # the same update from the loaded state
