"""benchmarks/_common.timed_train, what bench_compile and bench_ddp time: a real train.py run whose csv log gives
one time per step (Lightning's ThroughputMonitor) and the G loss of each step; a failing run is reported, not
raised."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402

TINY = (
    "+experiment=smoke_iframe",
    "data=synthetic",
    "data.synthetic.num_clips=4",
    "data.synthetic.size=64",
    "data.batch_size=2",
    "stage.warmup_steps=0",
    "stage.max_steps=4",
)


def test_every_step_is_timed_and_its_loss_read(tmp_path):
    res = _common.timed_train(TINY, tmp_path / "run", warmup=1, env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert "error" not in res, res
    assert len(res["step_s"]) == len(res["g_loss"]) == 4
    assert all(s > 0 for s in res["step_s"]) and res["first_s"] == res["step_s"][0]
    assert res["timed"] == 3 and min(res["step_s"][1:]) <= res["step_med_s"] <= max(res["step_s"][1:])
    assert sum(res["step_s"]) < res["wall_s"]  # the times are inside the process's own run


def test_a_failing_run_is_reported(tmp_path):
    res = _common.timed_train((*TINY, "stage.max_steps=-1"), tmp_path / "run", warmup=1, timeout=300)
    assert res["error"].startswith("exit ") and res["overrides"][-1] == "stage.max_steps=-1"
