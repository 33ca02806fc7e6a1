"""Build the datamodule, the stage's Lightning module and the Trainer from a composed config, then fit.

Hydra stays in train.py: `train(cfg, instantiate)` receives the composed DictConfig and an `instantiate`
callable (hydra.utils.instantiate) for the `_target_` nodes. Resume: an explicit `ckpt_path`, else (with
`auto_resume`) the newest of `<checkpoint_dir>/last.ckpt` and SLURM's `<output_dir>/hpc_ckpt_*.ckpt`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from gvc.errors import CheckpointError, ConfigError
from gvc.training.callbacks import LAST, AtomicCheckpoint, AtomicCheckpointIO, ModelFileExport

log = logging.getLogger(__name__)

Instantiate = Callable[..., object]


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def check_config(cfg: DictConfig) -> None:
    """Start-up checks that would otherwise fail late; raises ConfigError naming the key."""
    stage = cfg.stage
    if stage.name not in ("iframe", "pframe"):
        raise ConfigError(f"stage.name={stage.name!r}: use stage=iframe or stage=pframe")
    if stage.name == "pframe":
        from gvc.training.schedule import check_unroll_schedule

        check_unroll_schedule(stage.unroll)
        if not stage.get("iframe_ckpt") and not stage.get("allow_random_iframe", False):
            raise ConfigError(
                "stage 2 needs the stage-1 model: set stage.iframe_ckpt=PATH (a stage-1 checkpoint "
                "DIR/checkpoints/last.ckpt or a .gvcm model file)"
            )
        if stage.get("iframe_ckpt") and not Path(stage.iframe_ckpt).is_file():
            raise CheckpointError(f"stage.iframe_ckpt={stage.iframe_ckpt}: no such file")
        max_t = int(stage.unroll[-1][1])
        mcl = cfg.data.get("max_clip_length")
        if mcl is not None and int(mcl) < max_t:
            raise ConfigError(f"data.max_clip_length={mcl} is shorter than the longest unroll T={max_t}")
    if int(stage.max_steps) <= 0:
        raise ConfigError(f"stage.max_steps={stage.max_steps} must be > 0")
    if cfg.get("compile", False):
        from gvc.training.speed import check_compile_support

        check_compile_support(accelerator_type(cfg))


def accelerator_type(cfg: DictConfig) -> str:
    """The device kind ('cuda' or 'cpu') the Trainer of `cfg.trainer.accelerator` will train on."""
    acc = str((cfg.get("trainer") or {}).get("accelerator", "auto"))
    if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def build_perceptual(cfg: DictConfig, instantiate: Instantiate):
    """The frozen perceptual-loss module from cfg.perceptual (`_target_`), or None when loss.w_lpips is 0."""
    if float(cfg.loss.get("w_lpips", 0.0)) <= 0:
        return None
    node = cfg.get("perceptual")
    if node is None:
        raise ConfigError(
            "loss.w_lpips > 0 needs a perceptual loss: perceptual=lpips | stlpips_alex | stlpips_vgg"
        )
    return instantiate(node, _convert_="all")


def build_module(cfg: DictConfig, instantiate: Instantiate) -> L.LightningModule:
    """The stage's Lightning module with freshly initialised (stage 1) or stage-1-initialised (stage 2) models,
    with the speed options `compile` and `channels_last` applied (gvc.training.speed)."""
    from gvc.training.speed import apply_speed_options

    module = _build_stage_module(cfg, instantiate)
    compiled = apply_speed_options(
        module, compile=bool(cfg.get("compile", False)), channels_last=bool(cfg.get("channels_last", False))
    )
    if compiled:
        log.info("torch.compile (in place): %s", ", ".join(compiled))
    return module


def _build_stage_module(cfg: DictConfig, instantiate: Instantiate) -> L.LightningModule:
    """The module named by stage.module._target_ (a module class's `from_config`, `_partial_: true`)."""
    if cfg.stage.get("module") is None:
        raise ConfigError("stage.module is missing: conf/stage/*.yaml names the Lightning module by _target_")
    build = instantiate(cfg.stage.module)
    stage = {k: v for k, v in _plain(cfg.stage).items() if k != "module"}
    rate = instantiate(cfg.rate, _convert_="all")
    lpips = build_perceptual(cfg, instantiate)
    module = build(cfg.model, instantiate, lpips, rate, _plain(cfg.loss), stage)
    if not isinstance(module, L.LightningModule):
        raise ConfigError(
            f"stage.module._target_={cfg.stage.module._target_}: built a {type(module).__name__}"
        )
    return module


def find_resume_checkpoint(cfg: DictConfig) -> Path | None:
    """The checkpoint to resume from (see module docstring) or None for a fresh start."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise CheckpointError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint")
        return path
    if not cfg.get("auto_resume", True):
        return None
    candidates = [Path(cfg.paths.checkpoint_dir) / LAST, *Path(cfg.paths.output_dir).glob("hpc_ckpt_*.ckpt")]
    candidates = [p for p in candidates if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def build_trainer(cfg: DictConfig, instantiate: Instantiate, extra_callbacks=()) -> L.Trainer:
    callbacks = [
        instantiate(c, _convert_="all") for c in (cfg.get("callbacks") or {}).values() if c is not None
    ]
    callbacks += list(extra_callbacks)
    loggers = [instantiate(c, _convert_="all") for c in (cfg.get("logger") or {}).values() if c is not None]
    return instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )


def train(cfg: DictConfig, instantiate: Instantiate) -> dict:
    """Fit one stage. Returns dict(output_dir, step, checkpoint (last.ckpt or None), model_file (or None),
    resumed_from (or None), lambda_r)."""
    out_dir = Path(cfg.paths.output_dir).resolve()
    OmegaConf.set_struct(cfg, False)
    cfg.paths.output_dir = str(out_dir)
    OmegaConf.set_struct(cfg, True)
    check_config(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("torch_num_threads"):
        torch.set_num_threads(int(cfg.torch_num_threads))
    if torch.cuda.is_available() and cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    datamodule = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg, instantiate)
    trainer = build_trainer(cfg, instantiate)
    resume = find_resume_checkpoint(cfg)
    if resume is not None:
        log.info("resuming from %s", resume)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None, weights_only=True)

    ckpt_cb = next((c for c in trainer.callbacks if isinstance(c, AtomicCheckpoint)), None)
    export_cb = next((c for c in trainer.callbacks if isinstance(c, ModelFileExport)), None)
    return {
        "output_dir": str(out_dir),
        "step": int(module.gvc_step),
        "checkpoint": str(ckpt_cb.last_path) if ckpt_cb and ckpt_cb.last_path.is_file() else None,
        "model_file": str(export_cb.written) if export_cb and export_cb.written else None,
        "resumed_from": str(resume) if resume else None,
        "lambda_r": float(module.rate_controller.lambda_r),
    }
