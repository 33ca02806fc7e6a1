"""Stage 2 (PFrameModule): what trains and what stays frozen, the unroll schedule, stage-1 initialisation."""

from __future__ import annotations

import pytest
import torch

from gvc.errors import CheckpointError, ConfigError
from gvc.models.latents import FrameOut
from gvc.training import schedule
from gvc.training.run import check_config
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

PAPER = [[80000, 2], [300000, 3], [350000, 4], [400000, 6], [450000, 9]]


@pytest.mark.parametrize(
    ("step", "t"),
    [
        (0, 2),
        (79_999, 2),
        (80_000, 3),
        (299_999, 3),
        (300_000, 4),
        (349_999, 4),
        (350_000, 6),
        (400_000, 9),
        (449_999, 9),
        (10**6, 9),
    ],
)
def test_paper_unroll_schedule(step, t):
    assert schedule.unroll_length(step, PAPER) == t


@pytest.mark.parametrize("bad", [[], [[10, 2], [10, 3]], [[10, 1]], [[10, 2, 3]], [[20, 2], [10, 3]]])
def test_bad_unroll_schedule_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        schedule.check_unroll_schedule(bad)


def test_annealing_schedules():
    q = {
        "mode": "softround_kumaraswamy",
        "temperature": [0.3, 0.1],
        "kumaraswamy_a": [2.0, 1.0],
        "anneal_steps": 100,
        "ste_from_step": 150,
    }
    assert schedule.quantization(0, q) == (
        "softround_kumaraswamy",
        {"temperature": 0.3, "kumaraswamy_a": 2.0},
    )
    mode, p = schedule.quantization(50, q)
    assert p["temperature"] == pytest.approx(0.2) and p["kumaraswamy_a"] == pytest.approx(1.5)
    assert schedule.quantization(120, q)[1] == {"temperature": pytest.approx(0.1), "kumaraswamy_a": 1.0}
    assert schedule.quantization(150, q) == ("ste", {})
    # C3's order by default: the straight-through phase starts where the annealing ends (docs/METHOD.md section 6)
    c3 = {**q, "ste_from_step": None}
    assert schedule.quantization(99, c3)[0] == "softround_kumaraswamy"
    assert schedule.quantization(100, c3) == ("ste", {})
    assert schedule.quantization(10**6, {**c3, "mode": "noise"}) == ("noise", {})
    f = {"enabled": True, "start": 10.0, "end": 0.1, "anneal": "exp", "anneal_steps": 100}
    assert schedule.flow_weight(0, f) == pytest.approx(10.0)
    assert schedule.flow_weight(50, f) == pytest.approx(1.0)  # geometric midpoint
    assert schedule.flow_weight(500, f) == pytest.approx(0.1)
    assert schedule.flow_weight(50, {**f, "enabled": False}) == 0.0
    assert schedule.lr_factor(9, [10, 20], 0.1) == 1.0 and schedule.lr_factor(
        20, [10, 20], 0.1
    ) == pytest.approx(0.01)


def test_pframe_gan_step_trains_pframe_and_d_not_the_iframe_branch():
    torch.manual_seed(0)
    m = tiny_module("smoke_pframe", ["stage.warmup_steps=0", "stage.flow_warmup_steps=0"])
    before = clone_state(m)
    fit_on_batches(m, synthetic_batches(1, 3), max_steps=1)
    changed = state_equal(before, clone_state(m))
    assert m.gvc_step == 1
    assert not [k for k in changed if k.startswith(("video.iframe.", "lpips."))]  # frozen I-frame branch
    for part in (
        "video.pframe.flow_encoder.",
        "video.pframe.flow_generator.",
        "video.pframe.res_encoder.",
        "video.pframe.res_generator.",
        "video.pframe.res_bottleneck.",
        "video.pframe.flow_bottleneck.",
        "discriminator.",
    ):
        assert any(k.startswith(part) for k in changed), part
    assert all(not p.requires_grad for p in m.video.iframe.parameters())


def test_conditional_d_switch():
    m = tiny_module("smoke_pframe", ["stage.conditional_d=false"])
    out = FrameOut("P", None, d_latent=torch.randn(2, 32, 4, 4))
    assert torch.equal(m.objective.d_condition(out), torch.zeros(2, 32, 4, 4))
    m2 = tiny_module("smoke_pframe")
    assert torch.equal(m2.objective.d_condition(out), out.d_latent)


def test_unroll_schedule_drives_the_datamodule(tmp_path):
    """[[2,2],[4,3]]: steps 1-2 train T=2, the datamodule switches to T=3 after step 2, later steps train T=3."""
    cfg = compose_cfg(
        "smoke_pframe", fast_overrides(tmp_path, 6) + ["stage.unroll=[[2,2],[4,3]]", "data.max_clip_length=3"]
    )
    res = run_train(cfg)
    ts = per_step(read_metrics(tmp_path), "train/unroll_t")
    assert res["step"] == 6
    assert [ts[s] for s in (1, 2)] == [2, 2]
    assert [ts[s] for s in (4, 5, 6)] == [3, 3, 3]
    assert ts[3] in (2, 3)  # a batch fetched before the switch may still be T=2 (one batch of prefetch)


def test_stage2_config_needs_the_stage1_model(tmp_path):
    cfg = compose_cfg("gan_pframe")
    with pytest.raises(ConfigError, match="stage.iframe_ckpt"):
        check_config(cfg)
    cfg = compose_cfg("gan_pframe", [f"stage.iframe_ckpt={tmp_path / 'missing.ckpt'}"])
    with pytest.raises(CheckpointError, match="no such file"):
        check_config(cfg)


def test_stage2_initialises_from_a_stage1_checkpoint(tmp_path):
    stage1 = run_train(compose_cfg("smoke_iframe", fast_overrides(tmp_path / "i", 2)))
    m = tiny_module(
        "smoke_pframe", [f"stage.iframe_ckpt={stage1['checkpoint']}", "stage.allow_random_iframe=false"]
    )
    ckpt = torch.load(stage1["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    iframe = {f"codec.{k}": v for k, v in m.video.iframe.state_dict().items()}
    assert state_equal({k: ckpt[k] for k in iframe}, iframe) == []
    g_a = m.video.iframe.g_a.net.state_dict()
    assert state_equal(g_a, m.video.pframe.res_encoder.net.state_dict()) == []  # E_res <- E_I
    assert m.video.pframe.free_encoder is m.video.iframe.g_a  # y_free from the frozen E_I
    # the stage-1 training record travels into stage 2's (I-frame refinement targets come from it)
    stage1_record = torch.load(stage1["checkpoint"], map_location="cpu", weights_only=True)["gvc"]["export"]
    assert m.iframe_training == stage1_record["training"]
    assert m.training_record()["iframe"] == stage1_record["training"]
    assert m.training_record()["stage"] == "pframe"
