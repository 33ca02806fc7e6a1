"""Crash safety: SIGKILL mid-run then the same command resumes from last.ckpt; SIGTERM / SIGUSR1 save and stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch

from tests._training_helpers import ROOT, compose_cfg, fast_overrides, per_step, read_metrics, run_train


def _command(out_dir, max_steps: int) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "+experiment=smoke_iframe",
        f"paths.output_dir={out_dir}",
        "data=synthetic",
        "data.synthetic.num_clips=16",
        "data.batch_size=2",
        "data.num_workers=0",
        f"stage.max_steps={max_steps}",
        "stage.warmup_steps=3",
        "callbacks.checkpoint.every_n_steps=5",
        "callbacks.progress=null",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=0",
        "trainer.log_every_n_steps=1",
    ]


def _start(out_dir, max_steps: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        _command(out_dir, max_steps),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    t0 = time.time()
    while not path.is_file():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"no {path} after {timeout} s")
        time.sleep(0.2)


def _ckpt(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_sigkill_then_same_command_resumes(tmp_path):
    out, total = tmp_path / "run", 40
    last = out / "checkpoints" / "last.ckpt"
    proc = _start(out, total)
    _wait_for(last, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (out / "model.gvcm").exists()
    saved = _ckpt(last)["gvc"]  # never half-written: the checkpoint loads
    assert saved["step"] % 5 == 0 and 0 < saved["step"] < total and saved["stage"] == "iframe"

    proc = _start(out, total)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    lam = per_step(read_metrics(out), "lambda_r")  # lambda_R used by each step
    assert lam[saved["step"] + 1] == pytest.approx(saved["rate_controller"]["lambda_r"], rel=1e-6)
    assert _ckpt(last)["gvc"]["step"] == total and (out / "model.gvcm").is_file()
    versions = sorted(p.parent.name for p in out.glob("csv/version_*/metrics.csv"))
    assert versions == ["version_0"]  # one csv log across the kill and the resume
    steps = [
        int(float(r["train/step"]))
        for r in _rows(out / "csv" / "version_0" / "metrics.csv")
        if r.get("train/step")
    ]
    # the resumed launch appended rows that continue from the checkpoint, not from step 1
    start = len(steps) - 1 - steps[::-1].index(saved["step"] + 1)
    assert steps[start:] == list(range(saved["step"] + 1, total + 1))
    assert 1 not in steps[start:]


def _rows(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def test_sigterm_saves_and_stops_cleanly(tmp_path):
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    proc = _start(out, 10_000)
    _wait_for(last, proc)
    first = _ckpt(last)["gvc"]["step"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "stop signal received" in err or "stop signal received" in (out / "train.log").read_text()
    assert _ckpt(last)["gvc"]["step"] >= first
    assert not (out / "model.gvcm").exists()  # unfinished: no model file


class _SendUsr1(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.gvc_step == 3:
            os.kill(os.getpid(), signal.SIGUSR1)


def test_sigusr1_saves_and_stops(tmp_path):
    from hydra.utils import instantiate

    from gvc.training.run import build_module, build_trainer

    cfg = compose_cfg("smoke_iframe", fast_overrides(tmp_path, 50))
    module = build_module(cfg, instantiate)
    trainer = build_trainer(cfg, instantiate, extra_callbacks=[_SendUsr1()])
    trainer.fit(module, datamodule=instantiate(cfg.data, _convert_="all"))
    assert module.gvc_step in (3, 4)  # the signal lands at the end of step 3 or during step 4
    saved = _ckpt(tmp_path / "checkpoints" / "last.ckpt")["gvc"]
    assert saved["step"] == module.gvc_step
    assert not (tmp_path / "model.gvcm").exists()
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)  # handler removed after fit
    res = run_train(compose_cfg("smoke_iframe", fast_overrides(tmp_path, 6)))  # and it resumes
    assert res["resumed_from"] and res["step"] == 6


class _Explodes:
    def __reduce__(self):
        raise RuntimeError("killed mid-write")


def test_interrupted_checkpoint_write_keeps_the_previous_file(tmp_path):
    from gvc.training.callbacks import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"gvc": {"step": 5}, "w": torch.ones(1000)}, path)
    with pytest.raises(RuntimeError, match="mid-write"):  # fails after the tensor bytes were written
        io.save_checkpoint({"gvc": {"step": 10}, "w": torch.zeros(1000), "x": _Explodes()}, path)
    assert _ckpt(path)["gvc"]["step"] == 5
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temp file left
