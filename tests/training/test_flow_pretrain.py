"""Stage 2's flow pre-training phase (stage.flow_pretrain_steps; docs/METHOD.md section 3.6): only the flow codec
trains, on C * (lambda_F * R_flow + the flow term), the controller held, and a resume inside the phase is exact."""

from __future__ import annotations

import math

import pytest
import torch

from gvc.errors import ConfigError
from gvc.objectives import LossWeights, PFrameObjective
from tests._training_helpers import (
    clone_state,
    compose_cfg,
    fast_overrides,
    fit_on_batches,
    per_step,
    read_metrics,
    run_train,
    state_equal,
    synthetic_batches,
    tiny_module,
)
from tests.training.test_resume import _assert_same_state, _ckpt

FLOW_PARTS = ("video.pframe.flow_encoder.", "video.pframe.flow_generator.", "video.pframe.flow_bottleneck.")


def _changed_after(steps: int) -> list[str]:
    """State keys that `steps` steps change, with a 2-step phase ending the flow warm-up, GAN on from there."""
    torch.manual_seed(0)
    over = ["stage.flow_pretrain_steps=2", "stage.flow_warmup_steps=2", "stage.warmup_steps=0"]
    m = tiny_module("smoke_pframe", over)
    before = clone_state(m)
    lam = float(m.rate_controller.lambda_r)
    fit_on_batches(m, synthetic_batches(steps, 3), max_steps=steps)
    assert m.gvc_step == steps
    if steps <= 2:
        assert float(m.rate_controller.lambda_r) == lam  # the controller is held through the phase
    return state_equal(before, clone_state(m))


def test_the_phase_trains_the_flow_codec_only():
    changed = _changed_after(2)
    assert changed and all(k.startswith(FLOW_PARTS) for k in changed), [
        k for k in changed if not k.startswith(FLOW_PARTS)
    ]
    for part in FLOW_PARTS:
        assert any(k.startswith(part) for k in changed), part
    assert any(k.endswith("quantiles") for k in changed)  # the flow bottleneck's aux step runs
    # one joint step after the phase trains the residual codec (its quantiles too) and D_P
    after = _changed_after(3)
    for part in ("video.pframe.res_encoder.", "video.pframe.res_generator.", "discriminator."):
        assert any(k.startswith(part) for k in after), part
    assert any(k.startswith("video.pframe.res_bottleneck.") and k.endswith("quantiles") for k in after)


@pytest.mark.parametrize(("relative", "rate_lambda"), [(True, 8.0), (False, None)])
def test_flow_autoencoder_loss_is_the_hand_composition(relative, rate_lambda):
    torch.manual_seed(0)
    m = tiny_module("smoke_pframe")
    clip = synthetic_batches(1, 3)[0]
    outs = m.video.forward_clip(clip, mode="noise", residual=False)
    weights = LossWeights.from_config(m.loss_cfg)
    obj = PFrameObjective(
        weights, None, conditional_d=True, flow_relative=relative, flow_rate_lambda=rate_lambda
    )
    lam, w_flow = 30.0, 0.7
    terms = obj(clip, outs, lam, w_flow, flow_only=True)

    n_pix = clip.shape[-2] * clip.shape[-1]
    p = outs[1:]
    r_flow = sum(
        sum((-torch.log2(o.likelihoods[k])).flatten(1).sum(1) for k in ("flow_y", "flow_z")) / n_pix
        for o in p
    ) / len(p)
    charb = sum(torch.sqrt((o.flow_hat - o.flow_ref) ** 2 + weights.flow_eps**2).mean() for o in p) / len(p)
    mse = sum(((o.x_hat - clip[:, t + 1]) ** 2).mean() for t, o in enumerate(p)) / len(p)
    distortion = weights.C_D * weights.mse_scale * mse
    flow_term = w_flow * (distortion if relative else charb)
    price = lam if rate_lambda is None else rate_lambda
    want = weights.C * (price * r_flow.mean() + flow_term)
    assert float(terms.loss) == pytest.approx(float(want), rel=1e-5)
    # no distortion term: the loss is not C * (lambda_R R + D + flow), which it would be outside the phase
    full = obj(clip, outs, lam, w_flow)
    assert not math.isclose(float(full.loss), float(terms.loss), rel_tol=1e-3)
    # the gradient reaches the flow codec and nothing of the residual codec
    terms.loss.backward()
    flow_grads = [q.grad for q in m.video.pframe.flow_encoder.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in flow_grads)
    assert all(q.grad is None for q in m.video.pframe.res_encoder.parameters())


def test_the_phase_must_fit_in_the_flow_warmup():
    with pytest.raises(ConfigError, match="flow_pretrain_steps"):
        tiny_module("smoke_pframe", ["stage.flow_pretrain_steps=10", "stage.flow_warmup_steps=5"])
    with pytest.raises(ConfigError, match="flow_loss"):
        tiny_module("smoke_pframe", ["stage.flow_pretrain_steps=5", "stage.flow_loss.enabled=false"])


def test_resume_inside_the_phase_is_exact(tmp_path):
    """Phase steps 1-4, joint from step 5 (GAN on); 3 steps per epoch. The interrupted run saves its checkpoint
    at step 3 only (a run of 5 steps, none saved at the end: train.py refuses a 3-step run with a 4-step flow
    warm-up), then resumes to 6: the losses of steps 4-6, weights, optimizer states and lambda_R (held through
    the phase) equal the uninterrupted run's."""
    total, split = 6, 3
    common = [
        "stage.flow_pretrain_steps=4",
        "stage.flow_warmup_steps=4",
        "stage.warmup_steps=4",
        "stage.unroll=[[1000,3]]",
        "stage.flow_loss.anneal_steps=4",
        "data.synthetic.num_clips=6",
        "data.max_clip_length=3",
    ]
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    run_train(compose_cfg("smoke_pframe", fast_overrides(full_dir, total) + common))
    first = fast_overrides(part_dir, total - 1, every=split) + ["callbacks.checkpoint.save_at_end=false"]
    run_train(compose_cfg("smoke_pframe", first + common))
    assert _ckpt(part_dir)["gvc"]["step"] == split
    res = run_train(compose_cfg("smoke_pframe", fast_overrides(part_dir, total) + common))
    assert res["step"] == total and res["resumed_from"].endswith("last.ckpt")
    rows_full, rows_part = read_metrics(full_dir), read_metrics(part_dir)
    phase = per_step(rows_part, "train/flow_pretrain")
    assert [phase[s] for s in range(1, total + 1)] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    lam = per_step(rows_full, "train/lambda_r")
    assert lam[1] == lam[2] == lam[3] == lam[4]  # held through the phase
    loss_full, loss_part = per_step(rows_full, "train/g_loss"), per_step(rows_part, "train/g_loss")
    for s in range(split + 1, total + 1):
        assert loss_part[s] == pytest.approx(loss_full[s], rel=1e-5, abs=1e-7), s
    _assert_same_state(_ckpt(full_dir), _ckpt(part_dir))
