"""Two-process DDP on CPU (gloo) through train.py: after I-stage and P-stage steps (GAN on), both ranks hold
identical weights, step and lambda_R (each rank sees different clips, so a per-rank lambda_R would differ)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests._training_helpers import ROOT


def _ddp_run(tmp_path, experiment: str, extra: list[str]) -> list[dict]:
    out = tmp_path / experiment
    cmd = [
        sys.executable,
        "train.py",
        f"+experiment={experiment}",
        f"paths.output_dir={out}",
        "data=synthetic",
        "data.synthetic.num_clips=8",
        "data.synthetic.size=64",
        "data.batch_size=2",
        "data.num_workers=0",
        "stage.max_steps=4",
        "stage.warmup_steps=2",
        "callbacks.checkpoint.every_n_steps=0",
        "callbacks.progress=null",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "trainer.devices=2",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=0",
        "+callbacks.consistency._target_=gvc.training.callbacks.RankConsistencyCheck",
        "+callbacks.consistency.every_n_steps=0",
        f"+callbacks.consistency.dump_dir={out / 'ranks'}",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert (out / "model.gvcm").is_file()
    return ranks


@pytest.mark.parametrize(
    ("experiment", "extra"),
    [
        ("smoke_iframe", []),
        # one controller per level, each fed its level's items of both ranks
        ("smoke_iframe", ["rate=multi"]),
        (
            "smoke_pframe",
            ["stage.unroll=[[2,2],[4,3]]", "data.max_clip_length=3", "stage.flow_warmup_steps=0"],
        ),
    ],
)
def test_ddp_ranks_stay_identical(tmp_path, experiment, extra):
    r0, r1 = _ddp_run(tmp_path, experiment, extra)
    assert r0["step"] == r1["step"] == 4
    assert r0["lambda_r"] == r1["lambda_r"] != 1.0  # the controller moved, identically on both ranks
    assert r0["modules"] == r1["modules"]  # float64 checksums of every parameter and buffer
    assert r0["rate_controller"] == r1["rate_controller"]  # with rate=multi: every level's lambda_R and EMA
    if "rate=multi" in extra:  # each level was fed the items both ranks drew of it (different draws per rank)
        assert len({lv["lambda_r"] for lv in r0["rate_controller"]["levels"]}) > 1
