"""Build the datamodule, the stage's Lightning module and the Trainer from a composed config, then fit.

Hydra stays in train.py: `train(cfg, instantiate)` receives the composed DictConfig and an `instantiate`
callable (hydra.utils.instantiate) for the `_target_` nodes. Resume: an explicit `ckpt_path`, else (with
`auto_resume`) the newest of `<checkpoint_dir>/last.ckpt` and SLURM's `<output_dir>/hpc_ckpt_*.ckpt`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from gvc.cli_errors import folder_problem
from gvc.data.datamodule import check_data_config
from gvc.errors import CheckpointError, ConfigError, required
from gvc.training.callbacks import LAST, AtomicCheckpoint, AtomicCheckpointIO, ModelFileExport
from gvc.training.update import instantiate_optimizers

log = logging.getLogger(__name__)

Instantiate = Callable[..., object]
_ABSENT = object()
#: in the output dir: the wandb run id and csv log version of the run, reused by every resume
LOGGER_IDS = "logger_ids.json"


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def _int_key(cfg: DictConfig, key: str, minimum: int, allow_none: bool = False, even: bool = False) -> None:
    """ConfigError naming ``key`` unless its value is an integer >= ``minimum`` (or null where allowed)."""
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    if value is _ABSENT or (value is None and allow_none):
        return
    if value is None:
        raise ConfigError(f"{key}=null: give an integer >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r} is not an integer (want an integer >= {minimum})")
    if value < minimum:
        raise ConfigError(f"{key}={value} must be >= {minimum}")
    if even and value % 2:
        raise ConfigError(f"{key}={value} must be even (4:2:0 chroma is subsampled by 2)")


def check_output_dir(path) -> None:
    """``paths.output_dir`` can be created: no file on the way, writable."""
    out = Path(path).absolute()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"paths.output_dir={path}: is a file, not a folder")
    problem = folder_problem(out)
    if problem:
        raise ConfigError(f"paths.output_dir={path}: {problem}")


def _check_arguments(node, where: str) -> None:
    """ConfigError naming the first keyword-only constructor argument without a default of the gvc class that
    ``node`` names (``_target_``) and does not set: conf/ gives each, so a missing key is named (``where.KEY``)
    before the run starts instead of surfacing as the constructor's TypeError."""
    target = str(required(node, "_target_", where))
    if not target.startswith("gvc."):
        return
    module, _, name = target.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    for p in inspect.signature(cls).parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            required(node, p.name, where)


def check_config(cfg: DictConfig) -> None:
    """Start-up checks that would otherwise fail late (or deep inside Lightning/torch); raises ConfigError
    naming the key."""
    from gvc.training.schema import check_schema
    from gvc.training.stage_config import typed_stage

    check_schema(cfg, unknown_only=True)  # an unknown key (e.g. a typo added with `+`) first
    # the stage's values of their types, none missing (gvc.training.stage_config)
    stage = typed_stage(required(cfg, "stage"))
    check_data_config(required(cfg, "data"))  # then a missing one (conf/ gives every argument)
    for group in ("callbacks", "logger"):
        for name, node in (required(cfg, group) or {}).items():
            if node is not None:
                _check_arguments(node, f"{group}.{name}")
    _int_key(cfg, "stage.max_steps", 1)
    trainer_steps = OmegaConf.select(cfg, "trainer.max_steps", default=None)
    if trainer_steps not in (None, -1):
        raise ConfigError(
            f"trainer.max_steps={trainer_steps} counts Lightning optimizer steps (two per gvc step: generator "
            f"and discriminator) and would stop training half way without a model file; set the number of "
            f"training steps with stage.max_steps={trainer_steps} and leave trainer.max_steps=-1"
        )
    for key, minimum in (("data.batch_size", 1), ("data.clip_length", 1), ("data.samples_per_video", 1)):
        _int_key(cfg, key, minimum)
    _int_key(cfg, "data.num_workers", 0)
    for key in ("data.crop_size", "data.val_crop_size"):
        _int_key(cfg, key, 2, allow_none=True, even=True)
    _int_key(cfg, "data.val_batch_size", 1, allow_none=True)
    _int_key(cfg, "seed", 0)
    check_schema(cfg)  # values of the type conf/ gives them (stage.lr a number, ...)
    if cfg.get("paths") is not None:
        check_output_dir(cfg.paths.output_dir)
    if stage.name == "pframe":
        from gvc.training.schedule import check_unroll_schedule

        check_unroll_schedule(stage.unroll)
        warmup, max_steps = stage.flow_warmup_steps, stage.max_steps
        if not 0 <= warmup < max_steps:
            raise ConfigError(
                f"stage.flow_warmup_steps={warmup} must be in [0, stage.max_steps={max_steps}): warm-ups count "
                f"steps and do not scale with stage.max_steps; lower stage.flow_warmup_steps (e.g. "
                f"stage.flow_warmup_steps={max_steps * 3 // 20}) or raise stage.max_steps"
            )
        iframe_ckpt = stage.iframe_ckpt
        if not iframe_ckpt and not stage.allow_random_iframe:
            raise ConfigError(
                "stage 2 needs the stage-1 model: set stage.iframe_ckpt=PATH (a stage-1 checkpoint "
                "DIR/checkpoints/last.ckpt or a .gvcm model file)"
            )
        if iframe_ckpt and not Path(iframe_ckpt).is_file():
            raise CheckpointError(f"stage.iframe_ckpt={iframe_ckpt}: no such file")
        if iframe_ckpt:
            from gvc.training.export import check_stage1_file

            check_stage1_file(stage.iframe_ckpt)  # a .gvc, a text file, a stage-2 model: named, refused
        max_t = int(stage.unroll[-1][1])
        mcl = required(cfg.data, "max_clip_length", "data")
        if mcl is not None and int(mcl) < max_t:
            raise ConfigError(f"data.max_clip_length={mcl} is shorter than the longest unroll T={max_t}")
    if required(cfg, "compile"):
        from gvc.training.speed import check_compile_support

        check_compile_support(accelerator_type(cfg))


def accelerator_type(cfg: DictConfig) -> str:
    """The device kind ('cuda' or 'cpu') the Trainer of `cfg.trainer.accelerator` will train on."""
    acc = str(required(required(cfg, "trainer"), "accelerator", "trainer"))
    if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def build_perceptual(cfg: DictConfig, instantiate: Instantiate):
    """The frozen perceptual-loss module from cfg.perceptual (`_target_`), or None when loss.w_lpips is 0."""
    if float(required(cfg.loss, "w_lpips", "loss")) <= 0:
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
        module, compile=bool(required(cfg, "compile")), channels_last=bool(required(cfg, "channels_last"))
    )
    if compiled:
        log.info("torch.compile (in place): %s", ", ".join(compiled))
    return module


def _build_stage_module(cfg: DictConfig, instantiate: Instantiate) -> L.LightningModule:
    """The module named by stage.module._target_ (a module class's `from_config`, `_partial_: true`)."""
    if cfg.stage.get("module") is None:
        raise ConfigError("stage.module is missing: conf/stage/*.yaml names the Lightning module by _target_")
    build = instantiate(cfg.stage.module)
    from gvc.training.stage_config import stage_settings

    settings = {k: v for k, v in stage_settings(cfg.stage).items() if k != "module"}
    stage = instantiate_optimizers(settings, instantiate)
    rate = instantiate(cfg.rate, _convert_="all")
    lpips = build_perceptual(cfg, instantiate)
    module = build(cfg.model, instantiate, lpips, rate, _plain(cfg.loss), stage)
    if not isinstance(module, L.LightningModule):
        raise ConfigError(
            f"stage.module._target_={cfg.stage.module._target_}: built a {type(module).__name__}"
        )
    return module


def warn_small_crops(crop_size: int | None, size_multiple: int) -> bool:
    """Warn (and return True) when training crops give the hyperprior a z map of 1x1 (crop_size < 2 x the codec's
    size multiple): only the central taps of its synthesis then train, and on whole frames its scales come out
    too small, so real footage costs far more bits than the training crops (BENCHMARKS.md, "Training crop size
    and the hyperprior (bench_crop_size)")."""
    if crop_size is None or int(crop_size) >= 2 * size_multiple:
        return False
    log.warning(
        "data.crop_size=%d gives the hyperprior a 1x1 z map (the codec downsamples by %d): its scales will not "
        "fit whole frames, whose rate then runs far above the training crops'; use crops of at least %d",
        int(crop_size),
        size_multiple,
        2 * size_multiple,
    )
    return True


def find_resume_checkpoint(cfg: DictConfig) -> Path | None:
    """The checkpoint to resume from (see module docstring) or None for a fresh start."""
    if required(cfg, "ckpt_path"):
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise CheckpointError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint")
        return path
    if not required(cfg, "auto_resume"):
        return None
    candidates = [Path(cfg.paths.checkpoint_dir) / LAST, *Path(cfg.paths.output_dir).glob("hpc_ckpt_*.ckpt")]
    candidates = [p for p in candidates if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def _next_csv_version(root: Path) -> int:
    found = [int(p.name[8:]) for p in root.glob("version_*") if p.is_dir() and p.name[8:].isdigit()]
    return max(found) + 1 if found else 0


def build_loggers(cfg: DictConfig, instantiate: Instantiate) -> list:
    """The configured loggers, each continuing the same run across resumes of the same output dir: a wandb
    logger without ``id`` gets one generated once, a csv logger without ``version`` the next free version once;
    both are kept in ``<output_dir>/logger_ids.json`` (written by rank 0) and reused by every later launch."""
    from lightning.pytorch.utilities import rank_zero_only

    nodes = {k: c for k, c in (cfg.get("logger") or {}).items() if c is not None}
    if not nodes:
        return []
    out_dir = Path(cfg.paths.output_dir)
    ids_path = out_dir / LOGGER_IDS
    try:
        saved = json.loads(ids_path.read_text()) if ids_path.is_file() else {}
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{ids_path} is unreadable ({e}); delete it to start new logs") from e
    ids = dict(saved)
    loggers = []
    for name, node in nodes.items():
        target = str(node.get("_target_", ""))
        extra = {}
        where = f"logger.{name}"
        if (
            target.endswith("WandbLogger")
            and required(node, "id", where) is None
            and node.get("version") is None
        ):
            extra["id"] = ids.setdefault(f"{name}.id", uuid.uuid4().hex[:12])
        elif target.endswith("CSVLogger") and required(node, "version", where) is None:
            root = Path(required(node, "save_dir", where)) / str(required(node, "name", where))
            extra["version"] = ids.setdefault(f"{name}.version", _next_csv_version(root))
        loggers.append(instantiate(node, _convert_="all", **extra))
    if ids != saved and rank_zero_only.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = ids_path.with_name(f".{LOGGER_IDS}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(ids, indent=1))
        os.replace(tmp, ids_path)
    return loggers


def build_trainer(cfg: DictConfig, instantiate: Instantiate, extra_callbacks=()) -> L.Trainer:
    callbacks = [
        instantiate(c, _convert_="all") for c in (cfg.get("callbacks") or {}).values() if c is not None
    ]
    callbacks += list(extra_callbacks)
    loggers = build_loggers(cfg, instantiate)
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
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"paths.output_dir={out_dir}: cannot create it ({e.strerror or e})") from e
    if required(cfg, "torch_num_threads"):
        torch.set_num_threads(int(cfg.torch_num_threads))
    if torch.cuda.is_available() and required(cfg, "float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    datamodule = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg, instantiate)
    warn_small_crops(getattr(datamodule, "crop_size", None), int(getattr(module, "size_multiple", 64)))
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
