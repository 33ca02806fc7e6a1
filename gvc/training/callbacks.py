"""Checkpointing that survives kills, signal handling, RNG state, and the model-file export at the end of fit.

- `AtomicCheckpointIO`: Lightning CheckpointIO writing to a temporary file in the same folder, fsync, then
  os.replace, so a kill mid-write never leaves a half-written checkpoint (the previous one stays valid).
- `AtomicCheckpoint`: writes `<dirpath>/last.ckpt` every `every_n_steps` of OUR step counter (module.gvc_step),
  at the end of training, and when a stop signal arrives (SIGTERM: Lightning's handler; SIGUSR1 outside SLURM:
  ours), after which training stops cleanly. Under SLURM with auto-requeue Lightning keeps SIGUSR1 for itself
  (it writes hpc_ckpt_N.ckpt into the run dir and requeues; gvc.training.run resumes from the newest of those and
  last.ckpt). Also keeps the RNG states (torch, numpy, random, CUDA) so a single-process resume continues the
  same random stream; with several ranks each rank is reseeded from (seed, rank, step) instead.
- `ModelFileExport`: writes the codec model file (.gvcm) when fit ends with the stage's step budget reached.
- `ResumableCSVLogger`: a CSVLogger that appends to its metrics.csv on resume instead of deleting it.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import signal
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.plugins.io import TorchCheckpointIO

log = logging.getLogger(__name__)

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to `<path>.tmp-<pid>` in the same folder, fsync, os.replace(tmp, path) (local paths);
    remote fsspec paths fall back to Lightning's writer."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        fs = get_filesystem(path)
        if type(fs).__name__ != "LocalFileSystem":
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        try:  # make the rename durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass


def _rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {  # plain values and tensors only (loadable with torch.load(weights_only=True))
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class AtomicCheckpoint(L.Callback):
    """Save `<dirpath>/last.ckpt` atomically (with AtomicCheckpointIO) on our step counter and on stop signals.

    Keyword-only arguments without defaults: conf/callbacks/default.yaml gives each.

    Args:
        dirpath: checkpoint folder (conf: ${paths.checkpoint_dir}).
        every_n_steps: period in OUR training steps (module.gvc_step); <= 0 disables periodic saves.
        save_on_signal: on SIGTERM (any launcher) or SIGUSR1 (when no SLURM requeue handler owns it): save, stop.
        save_at_end: save when training ends normally (step budget reached).
    """

    def __init__(self, *, dirpath: str, every_n_steps: int, save_on_signal: bool, save_at_end: bool):
        self.dirpath = Path(dirpath)
        self.every_n_steps = int(every_n_steps)
        self.save_on_signal = save_on_signal
        self.save_at_end = save_at_end
        self._signal_received: int | None = None
        self._previous_usr1 = None
        self._last_saved_step: int | None = None
        self.stopped_by_signal = False
        self._world_size = 1
        self._rank = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._world_size = trainer.world_size
        self._rank = trainer.global_rank

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    # ------------------------------------------------------------------ signals
    def _on_usr1(self, signum, frame) -> None:
        self._signal_received = signum

    def on_train_start(self, trainer, pl_module) -> None:
        if self.save_on_signal and hasattr(signal, "SIGUSR1"):
            current = signal.getsignal(signal.SIGUSR1)
            if current in (None, signal.SIG_DFL):  # Lightning's SLURM requeue handler keeps priority
                self._previous_usr1 = current
                signal.signal(signal.SIGUSR1, self._on_usr1)

    def _restore_usr1(self) -> None:
        if self._previous_usr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_usr1)
            self._previous_usr1 = None

    def _stop_requested(self, trainer) -> bool:
        local = self._signal_received is not None or bool(getattr(trainer, "received_sigterm", False))
        if trainer.world_size > 1:
            flag = torch.tensor(float(local), device=trainer.strategy.root_device)
            local = float(trainer.strategy.reduce(flag, reduce_op="sum")) > 0
        return local

    # ------------------------------------------------------------------ saving
    def save(self, trainer, pl_module) -> None:
        step = int(getattr(pl_module, "gvc_step", trainer.global_step))
        self._last_saved_step = step  # read by state_dict() during the save
        trainer.save_checkpoint(str(self.last_path), weights_only=False)
        if trainer.is_global_zero:
            log.info("saved %s at step %d", self.last_path, step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(getattr(pl_module, "gvc_step", trainer.global_step))
        stop = self.save_on_signal and self._stop_requested(trainer)
        periodic = self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0
        if (periodic or stop) and step != self._last_saved_step:
            self.save(trainer, pl_module)
        if stop:
            self.stopped_by_signal = True
            trainer.should_stop = True
            if trainer.is_global_zero:
                log.warning("stop signal received: saved %s at step %d, stopping", self.last_path, step)

    def on_train_end(self, trainer, pl_module) -> None:
        step = int(getattr(pl_module, "gvc_step", trainer.global_step))
        if self.save_at_end and step != self._last_saved_step and step > 0:
            self.save(trainer, pl_module)
        self._restore_usr1()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore_usr1()

    # ------------------------------------------------------------------ state in the checkpoint
    def state_dict(self) -> dict:
        return {
            "rng": {
                "state": _rng_state(),
                "world_size": self._world_size,
                "seed": int(os.environ.get("PL_GLOBAL_SEED", 0)),
            },
            "step": int(self._last_saved_step or 0),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the RNG streams right when the checkpoint is loaded, i.e. before Lightning creates the training
        iterator (whose sampler and worker seeds draw from them). One process: the saved states; several ranks:
        a fresh seed per rank from (seed, rank, step) (only rank 0's states are in the checkpoint)."""
        rng = state_dict.get("rng")
        if rng is None:
            return
        if self._world_size == 1 and rng.get("world_size", 1) == 1:
            _set_rng_state(rng["state"])
        else:
            step = int(state_dict.get("step", 0))
            seed = (int(rng.get("seed", 0)) * 1_000_003 + self._rank * 7919 + step) % (2**31)
            L.seed_everything(seed, workers=True, verbose=False)


class ModelFileExport(L.Callback):
    """Write the codec model file (gvc.codec.modelfile.save_model_file) when fit ends with the stage finished
    (module.finished); a run stopped early (signal, error) writes none: use `gvc export CKPT -o FILE.gvcm`."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.written: Path | None = None

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        if not getattr(pl_module, "finished", True):
            log.info(
                "training stopped at step %s before stage.max_steps: no model file written (use gvc export)",
                getattr(pl_module, "gvc_step", "?"),
            )
            return
        from gvc.codec.modelfile import save_model_file

        mid = save_model_file(self.path, pl_module.export_codec(), training=pl_module.training_record())
        self.written = self.path
        log.info("wrote codec model file %s (id %s)", self.path, mid[:16])


class RankConsistencyCheck(L.Callback):
    """At the end of training (and every `every_n_steps` of our steps when > 0), check that every rank holds the
    same weights (a float64 checksum of all parameters and buffers), step and lambda_R; raise TrainingError naming
    the difference otherwise. `dump_dir`: each rank also writes rank<R>.json there (step, lambda_r, checksum,
    per-module checksums) for offline comparison (null: none). Keyword-only, no defaults: the callback's config
    node gives both (e.g. ``+callbacks.consistency.every_n_steps=0 +callbacks.consistency.dump_dir=null``)."""

    def __init__(self, *, every_n_steps: int, dump_dir: str | None):
        self.every_n_steps = int(every_n_steps)
        self.dump_dir = Path(dump_dir) if dump_dir else None

    @staticmethod
    def summary(pl_module) -> dict:
        sums: dict[str, float] = {}
        for name, t in list(pl_module.state_dict().items()):
            if torch.is_floating_point(t):
                top = name.split(".")[0]
                sums[top] = sums.get(top, 0.0) + float(
                    t.detach().double().abs().sum() + t.detach().double().sum()
                )
        rc = getattr(pl_module, "rate_controller", None)
        return {
            "step": int(getattr(pl_module, "gvc_step", -1)),
            "lambda_r": float(rc.lambda_r) if rc is not None else None,
            # every level's lambda_R and EMA when variable-rate
            "rate_controller": rc.state_dict() if rc is not None else None,
            "checksum": sum(sums.values()),
            "modules": sums,
        }

    def _check(self, trainer, pl_module) -> None:
        s = self.summary(pl_module)
        if self.dump_dir is not None:
            import json

            self.dump_dir.mkdir(parents=True, exist_ok=True)
            (self.dump_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(s, indent=1))
        if trainer.world_size == 1:
            return
        from gvc.errors import TrainingError

        mine = torch.tensor([s["step"], s["lambda_r"] or 0.0, s["checksum"]], dtype=torch.float64)
        gathered = trainer.strategy.all_gather(mine.to(trainer.strategy.root_device)).cpu()
        if not torch.equal(gathered.min(0).values, gathered.max(0).values):
            raise TrainingError(
                f"ranks diverged (step, lambda_R, weight checksum per rank): {gathered.tolist()}"
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(getattr(pl_module, "gvc_step", 0))
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0:
            self._check(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._check(trainer, pl_module)


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that an existing ``metrics.csv`` of the same version is appended to rather
    than deleted: a resumed run (same output dir, same version, see gvc.training.run.build_loggers) keeps one
    csv log with the rows of every launch. Rows a killed launch logged after its last checkpoint stay in the
    file; the resumed launch logs those steps again below them (readers keep the last row of a step).

    Lightning's arguments, keyword-only and without defaults: conf/logger/csv.yaml gives each."""

    def __init__(
        self,
        *,
        save_dir: str,
        name: str,
        version: int | str | None,
        prefix: str,
        flush_logs_every_n_steps: int,
    ):
        super().__init__(
            save_dir=save_dir,
            name=name,
            version=version,
            prefix=prefix,
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = _AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment


class _AppendingExperimentWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        """Keep an existing metrics.csv and continue its columns (Lightning's writer deletes it)."""
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as fh:
                header = next(csv.reader(fh), [])
            self.metrics_keys = sorted(header)
