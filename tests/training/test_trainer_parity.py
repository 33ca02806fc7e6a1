"""The trainer's update is the plain loop's update: train.py (MSE-only, fixed lambda_R, C and C_D folded into
lambda_R) and the 20-line reference loop of benchmarks/bench_trainer_parity.py, started from the same seed on
the same DataModule, reach the same weights after a few steps. A wrong loss scale, a missing or doubled aux
step, another clip, another optimizer group or another batch order breaks this (the benchmark then measures
what the two make of held-out frames over thousands of steps)."""

import sys
from pathlib import Path

import torch

from tests._training_helpers import compose_cfg, fast_overrides, run_train

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_trainer_parity as parity  # noqa: E402

STEPS = 6


def _cfg(out_dir):
    return compose_cfg(
        "smoke_iframe",
        [
            *fast_overrides(out_dir, STEPS),
            "model=small",
            "loss=mse",
            "loss.w_lpips=0",
            "rate.k_p=0",
            f"rate.lambda_init={parity.lambda_r()}",
            "stage.warmup_steps=0",
            "stage.lr_schedule.milestones=[]",
            "data.synthetic.num_clips=32",
        ],
    )


def test_trainer_reaches_the_plain_loops_weights(tmp_path):
    from gvc.codec.modelfile import load_model_file

    cfg = _cfg(tmp_path / "run")
    torch.set_num_threads(1)
    trained = load_model_file(run_train(cfg)["model_file"])
    loop = parity.plain_loop(cfg, STEPS)
    start = parity.plain_loop(cfg, 0)  # the common initialisation (no update)
    moved = 0.0
    for name, p in loop.named_parameters():
        if name.endswith("quantiles"):
            continue
        t = trained.state_dict()[name]
        scale = (p.detach() - start.state_dict()[name]).abs().max()
        moved = max(moved, float(scale))
        torch.testing.assert_close(t, p.detach(), rtol=0, atol=1e-4 + 1e-2 * float(scale), msg=name)
    assert moved > 1e-3  # the weights did move: the comparison is not between two untouched inits
