"""Resume from a checkpoint continues training exactly: losses, step counter, lambda_R, unroll T, optimizers."""

from __future__ import annotations

import pytest
import torch

from tests._training_helpers import (
    compose_cfg,
    fast_overrides,
    per_step,
    read_metrics,
    run_train,
    state_equal,
)


def _ckpt(out_dir):
    return torch.load(out_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["gvc"]["step"] == b["gvc"]["step"]
    assert a["gvc"]["rate_controller"] == b["gvc"]["rate_controller"]
    assert state_equal(a["state_dict"], b["state_dict"]) == []
    for oa, ob in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for pa, pb in zip(oa["state"].values(), ob["state"].values(), strict=True):
            for k in pa:
                assert torch.equal(pa[k], pb[k]), k


def test_iframe_resume_matches_uninterrupted_run(tmp_path):
    """8 synthetic clips, batch 2 = 4 steps/epoch; 7 steps straight vs 4 steps + resume to 7 (GAN from step 2,
    lr decay at 5): the losses of steps 5-7, weights, optimizer states and lambda_R are identical.

    The split is at an epoch boundary; mid-epoch resumes (same batches, same losses) are in test_data_resume.py."""
    total, split = 7, 4
    common = ["stage.warmup_steps=2", "stage.lr_schedule.milestones=[5]"]
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    full = run_train(compose_cfg("smoke_iframe", fast_overrides(full_dir, total) + common))
    first = run_train(compose_cfg("smoke_iframe", fast_overrides(part_dir, split) + common))
    assert first["step"] == split and first["resumed_from"] is None
    assert _ckpt(part_dir)["gvc"]["step"] == split
    second = run_train(compose_cfg("smoke_iframe", fast_overrides(part_dir, total) + common))
    assert second["resumed_from"].endswith("last.ckpt") and second["step"] == total

    loss_full = per_step(read_metrics(full_dir), "train/g_loss")
    loss_part = per_step(read_metrics(part_dir), "train/g_loss")
    assert sorted(loss_part) == list(range(1, total + 1))  # the resumed run went on from split + 1
    for s in range(split + 1, total + 1):
        assert loss_part[s] == pytest.approx(loss_full[s], rel=1e-5, abs=1e-7), s
    assert second["lambda_r"] == full["lambda_r"]
    _assert_same_state(_ckpt(full_dir), _ckpt(part_dir))


def test_pframe_resume_across_unroll_stage(tmp_path):
    """Unroll [[3,2],[6,3]]: stop at step 4 (T=3), resume to 6: T, step, lambda_R and losses continue."""
    total, split = 6, 4
    common = [
        "stage.unroll=[[3,2],[6,3]]",
        "stage.warmup_steps=1",
        "stage.flow_loss.anneal_steps=4",  # the default (a share of max_steps) differs between 4- and 6-step runs
        "data.synthetic.num_clips=4",
        "data.max_clip_length=3",
    ]
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    run_train(compose_cfg("smoke_pframe", fast_overrides(full_dir, total) + common))
    run_train(compose_cfg("smoke_pframe", fast_overrides(part_dir, split) + common))
    res = run_train(compose_cfg("smoke_pframe", fast_overrides(part_dir, total) + common))
    assert res["step"] == total
    rows_full, rows_part = read_metrics(full_dir), read_metrics(part_dir)
    t_part = per_step(rows_part, "train/unroll_t")
    assert t_part[split + 1] == 3  # the first step after the resume already trains at the resumed T
    loss_full, loss_part = per_step(rows_full, "train/g_loss"), per_step(rows_part, "train/g_loss")
    for s in range(split + 1, total + 1):
        assert loss_part[s] == pytest.approx(loss_full[s], rel=1e-5, abs=1e-7), s
    _assert_same_state(_ckpt(full_dir), _ckpt(part_dir))


@pytest.mark.parametrize(
    ("experiment", "common"),
    [
        ("smoke_iframe", ["stage.warmup_steps=2"]),
        ("smoke_pframe", ["stage.unroll=[[3,2],[6,3]]", "stage.flow_loss.anneal_steps=4",
                          "data.max_clip_length=3"]),
    ],
)  # fmt: skip
def test_variable_rate_resume_continues_every_levels_controller(tmp_path, experiment, common):
    """rate=multi (eight levels, a level drawn per item): 6 steps straight vs 4 + resume to 6 give the same
    losses, the same per-level controller states (lambda_R, EMA of each level), weights (gains included) and
    optimizer states: the levels drawn after the resume are those of the uninterrupted run."""
    total, split = 6, 4
    common = ["rate=multi", *common]
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    run_train(compose_cfg(experiment, fast_overrides(full_dir, total) + common))
    run_train(compose_cfg(experiment, fast_overrides(part_dir, split) + common))
    assert run_train(compose_cfg(experiment, fast_overrides(part_dir, total) + common))["step"] == total
    loss_full = per_step(read_metrics(full_dir), "train/g_loss")
    loss_part = per_step(read_metrics(part_dir), "train/g_loss")
    for s in range(split + 1, total + 1):
        assert loss_part[s] == pytest.approx(loss_full[s], rel=1e-5, abs=1e-7), s
    full, part = _ckpt(full_dir), _ckpt(part_dir)
    levels = full["gvc"]["rate_controller"]["levels"]
    assert len(levels) == 8 and len({lv["lambda_r"] for lv in levels}) > 1  # the levels moved apart
    _assert_same_state(full, part)


def test_iframe_resume_mid_epoch_continues_counters(tmp_path):
    """A resume in the middle of an epoch continues our step counter, lambda_R and the optimizer step counts."""
    out = tmp_path / "run"
    run_train(compose_cfg("smoke_iframe", fast_overrides(out, 3) + ["stage.warmup_steps=1"]))
    saved = _ckpt(out)
    res = run_train(compose_cfg("smoke_iframe", fast_overrides(out, 5) + ["stage.warmup_steps=1"]))
    assert saved["gvc"]["step"] == 3 and res["step"] == 5
    lam = per_step(read_metrics(out), "lambda_r")  # lambda_R used by each step
    assert lam[4] == pytest.approx(saved["gvc"]["rate_controller"]["lambda_r"], rel=1e-6)
    end = _ckpt(out)
    # Adam's per-parameter step count went on from 3 (G) and 2 (D: GAN from step 1) to 5 and 4
    g_state = next(iter(end["optimizer_states"][0]["state"].values()))
    d_state = next(iter(end["optimizer_states"][2]["state"].values()))
    assert float(g_state["step"]) == 5 and float(d_state["step"]) == 4
    # one csv log across the resume: the same version, holding the rows of both launches
    assert sorted(p.name for p in (out / "csv").iterdir()) == ["version_0"]
    assert sorted(per_step(read_metrics(out), "train/g_loss")) == [1, 2, 3, 4, 5]
