import math

import pytest
import torch

from gvc.rate_control import MultiRateController, ProportionalRateController, TwoLevelRateController


def _proportional(**kw) -> ProportionalRateController:
    """A proportional controller: lambda_R from 1, EMA off, clamp [1e-3, 1e3], no error clip, unless given."""
    base = dict(target_bpp=0.1, lambda_init=1.0, k_p=0.05, ema_decay=0.0, lambda_min=1e-3, lambda_max=1e3,
                max_relative_error=None)  # fmt: skip
    return ProportionalRateController(**{**base, **kw})


def _two_level(**kw) -> TwoLevelRateController:
    """A two-level switch 4 / 0.25 around 0.13 bpp, EMA off, no early schedule, unless given."""
    base = dict(lambda_a=4.0, lambda_b=0.25, target_bpp=0.13, ema_decay=0.0, schedule_steps=0,
                target_factor=1.0, lambda_factor=1.0)  # fmt: skip
    return TwoLevelRateController(**{**base, **kw})


def _toy_bpp(lam: float) -> float:
    """A toy codec: more rate weight, fewer bits (bpp = 0.5 / (1 + lambda)^0.7)."""
    return 0.5 / (1.0 + lam) ** 0.7


def test_proportional_controller_reaches_target():
    ctrl = _proportional(target_bpp=0.13, lambda_init=0.01, ema_decay=0.9, lambda_min=1e-4, lambda_max=1e4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3000):
        noise = 1 + 0.05 * torch.randn(1, generator=gen).item()  # batch-to-batch fluctuation
        ctrl.update(_toy_bpp(ctrl.lambda_r) * noise)
    lam_star = (0.5 / 0.13) ** (1 / 0.7) - 1
    assert abs(_toy_bpp(ctrl.lambda_r) - 0.13) / 0.13 < 0.05
    assert abs(math.log(ctrl.lambda_r / lam_star)) < 0.1


def test_proportional_controller_direction_and_clamp():
    ctrl = _proportional(k_p=0.1, lambda_min=0.5, lambda_max=2.0)
    assert ctrl.update(0.2) > 1.0  # too many bits -> heavier rate weight
    ctrl2 = _proportional(k_p=0.1, lambda_min=0.5, lambda_max=2.0)
    assert ctrl2.update(0.05) < 1.0
    for _ in range(100):
        ctrl.update(10.0)
    assert ctrl.lambda_r == 2.0
    for _ in range(1000):
        ctrl.update(0.0)
    assert ctrl.lambda_r == 0.5


def test_ema_and_state_dict_roundtrip():
    a = _proportional(ema_decay=0.9)
    a.update(0.3)
    assert a.bpp_ema == pytest.approx(0.3)  # EMA starts at the first measurement
    a.update(0.1)
    assert a.bpp_ema == pytest.approx(0.9 * 0.3 + 0.1 * 0.1)
    b = _proportional(ema_decay=0.9)
    b.load_state_dict(a.state_dict())
    for v in (0.2, 0.05, 0.12):
        assert a.update(v) == b.update(v)
    assert a.state_dict() == b.state_dict()


def test_reduce_fn_is_applied_before_update():
    seen = []

    def fake_all_reduce_mean(t):  # what a DDP caller would pass: average over ranks
        seen.append(t.clone())
        return (t + 0.3) / 2  # pretend the other rank measured 0.3

    a = _proportional()
    a.update_from_tensor(torch.tensor([0.1, 0.1]), reduce_fn=fake_all_reduce_mean)
    assert len(seen) == 1 and a.bpp_ema == pytest.approx(0.2)
    with pytest.raises(ValueError, match="not finite"):
        a.update(float("nan"))


def test_two_level_controller():
    c = _two_level()
    assert c.update(0.2) == 4.0 and c.update(0.1) == 0.25
    d = _two_level()
    d.load_state_dict(c.state_dict())
    assert d.lambda_r == 0.25 and d.update(0.14) == 4.0
    # the two-level switch also keeps the toy codec around the target
    c = _two_level(target_bpp=0.2)
    hist = []
    for _ in range(20):
        hist.append(_toy_bpp(c.lambda_r))
        c.update(hist[-1])
    assert min(hist) < 0.2 < max(hist)
    with pytest.raises(ValueError):
        _two_level(lambda_a=1.0, lambda_b=2.0, target_bpp=0.1)


def test_proportional_error_clip_bounds_each_step():
    clipped = _proportional(k_p=0.1, lambda_max=1e4, max_relative_error=1.0)
    free = _proportional(k_p=0.1, lambda_max=1e4)
    for _ in range(10):  # a fresh model at 10x the target bpp
        clipped.update(1.0)
        free.update(1.0)
    assert abs(clipped.lambda_r - math.exp(10 * 0.1 * 1.0)) < 1e-9  # e clipped to 1 per step
    assert abs(free.lambda_r - math.exp(10 * 0.1 * 9.0)) < 1e-6  # unclipped: e = 9 per step
    clipped.update(0.095)  # small errors pass through unchanged
    assert abs(math.log(clipped.lambda_r) - (1.0 + 0.1 * -0.05)) < 1e-6


def _multi(**kw) -> MultiRateController:
    """Four levels 0.05 .. 0.4 bpp, lambda_R from 1, EMA 0.9, unless given."""
    base = dict(targets=[0.05, 0.1, 0.2, 0.4], lambda_init=1.0, k_p=0.05, ema_decay=0.9, lambda_min=1e-4,
                lambda_max=1e4, max_relative_error=1.0)  # fmt: skip
    return MultiRateController(**{**base, **kw})


def test_multi_controller_settles_every_level_on_its_own_target():
    """A toy variable-rate codec (level k's item has bpp _toy_bpp(lambda_k) x 1.5^k): items draw random levels,
    each level's lambda_R moves only with its own items, and each settles on its target."""
    ctrl = _multi()
    gen = torch.Generator().manual_seed(0)
    for _ in range(6000):
        levels = ctrl.draw(4, generator=gen)
        lam = ctrl.lambdas(levels)
        bpp = torch.tensor([_toy_bpp(float(v)) for v in lam]) * 1.5 ** levels.double()
        ctrl.update_levels(*ctrl.reduce_levels(bpp, levels))
    for k, (c, target) in enumerate(zip(ctrl.levels, ctrl.targets, strict=True)):
        assert abs(_toy_bpp(c.lambda_r) * 1.5**k / target - 1) < 0.05, k
    lam = [c.lambda_r for c in ctrl.levels]
    assert lam == sorted(lam, reverse=True)  # lower targets, larger rate weights


def test_multi_controller_reduces_per_level_over_ranks_and_round_trips():
    """Two ranks' items: the per-level sums and counts are averaged over ranks (their ratio is the pooled mean of
    each level), a level no rank drew keeps its state, and the state round-trips through a checkpoint."""
    a_bpp, a_lev = torch.tensor([0.1, 0.3, 0.2]), torch.tensor([0, 2, 0])
    b_bpp, b_lev = torch.tensor([0.4, 0.05]), torch.tensor([2, 0])
    ranks = [_multi().reduce_levels(a_bpp, a_lev), _multi().reduce_levels(b_bpp, b_lev)]

    def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:  # what torch.distributed would return on each rank
        return (torch.stack([ranks[0][0], ranks[0][1]]) + torch.stack([ranks[1][0], ranks[1][1]])) / 2

    ctrl = _multi()
    sums, counts = ctrl.reduce_levels(a_bpp, a_lev, all_reduce_mean)
    assert (sums / counts.clamp_min(1)).tolist() == pytest.approx([0.35 / 3, 0.0, 0.35, 0.0])
    mean = ctrl.update_levels(sums, counts)
    assert mean == pytest.approx(1.05 / 5)
    assert [c.bpp_ema for c in ctrl.levels] == pytest.approx([0.35 / 3, None, 0.35, None])
    restored = _multi()
    restored.load_state_dict(ctrl.state_dict())
    assert restored.state_dict() == ctrl.state_dict() and restored.lambda_r == ctrl.lambda_r
    with pytest.raises(ValueError, match="resume with the same rate.targets"):
        _multi(targets=[0.1, 0.2]).load_state_dict(ctrl.state_dict())
    with pytest.raises(ValueError, match="strictly increasing"):
        _multi(targets=[0.2, 0.1])
