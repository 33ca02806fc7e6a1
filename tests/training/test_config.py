"""Every experiment composes; the tiny ones instantiate; run-dir, logger and operating-point settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gvc.training.run import build_module, build_trainer, check_config
from tests._training_helpers import CONF, compose_cfg

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
REQUIRED = {
    "gan_iframe",
    "gan_pframe",
    "mse_pframe",
    "smoke_iframe",
    "smoke_pframe",
    "gan_pframe_0p064",
    "gan_pframe_0p13",
    "gan_pframe_0p22",
}


def test_required_experiments_exist():
    assert REQUIRED <= set(EXPERIMENTS)
    for name in EXPERIMENTS:
        assert (CONF / "experiment" / f"{name}.yaml").read_text().startswith("# @package _global_")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_resolves(name):
    cfg = compose_cfg(name, return_hydra_config=True)
    assert cfg.task_name == name
    assert cfg.hydra.run.dir == cfg.paths.output_dir  # everything of a run, .hydra/ included, in one dir
    assert cfg.paths.checkpoint_dir.startswith(cfg.paths.output_dir)
    cfg = compose_cfg(name)
    plain = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    stage = plain["stage"]
    assert stage["name"] in ("iframe", "pframe") and stage["max_steps"] > 0
    for key in ("iframe", "discriminator_i", "pframe", "flow", "discriminator_p"):
        assert "_target_" in plain["model"][key], key
    if stage["name"] == "pframe":
        assert plain["data"]["max_clip_length"] >= stage["unroll"][-1][1]
    assert plain["loss"]["gan"] == (not name.startswith("mse_"))


def test_paper_experiments():
    i = compose_cfg("gan_iframe")
    assert (i.data.crop_size, i.data.batch_size, i.stage.max_steps, i.data.clip_length) == (
        256,
        8,
        1_000_000,
        1,
    )
    p = compose_cfg("gan_pframe")
    assert [list(x) for x in p.stage.unroll] == [
        [80000, 2],
        [300000, 3],
        [350000, 4],
        [400000, 6],
        [450000, 9],
    ]
    assert p.stage.max_steps == 450_000 and p.stage.conditional_d and p.stage.flow_loss.enabled
    assert compose_cfg("mse_pframe").stage.unroll == p.stage.unroll  # same schedule, GAN off
    for tag, bpp in (("0p064", 0.064), ("0p13", 0.13), ("0p22", 0.22)):
        c = compose_cfg(f"gan_pframe_{tag}")
        assert c.rate.target_bpp == bpp and c.stage.name == "pframe" and c.loss.gan


def test_wandb_offline_unless_wandb_mode_is_set(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert compose_cfg("gan_iframe").logger.wandb.mode == "offline"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert compose_cfg("gan_iframe").logger.wandb.mode == "online"


def test_ddp_trainer_config():
    cfg = compose_cfg("gan_pframe", ["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"])
    assert cfg.trainer.strategy._target_.endswith("DDPStrategy")
    assert (cfg.trainer.devices, cfg.trainer.num_nodes, cfg.trainer.precision) == (4, 2, "bf16-mixed")


@pytest.mark.parametrize("name", ["smoke_iframe", "smoke_pframe"])
def test_tiny_experiments_instantiate(name, tmp_path):
    cfg = compose_cfg(name, [f"paths.output_dir={tmp_path}", "torch_num_threads=1"])
    check_config(cfg)
    dm = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg, instantiate)
    trainer = build_trainer(cfg, instantiate)
    assert dm.crop_size == (64 if name == "smoke_iframe" else 128) and dm.batch_size == cfg.data.batch_size
    assert type(module).__name__ == ("IFrameModule" if name == "smoke_iframe" else "PFrameModule")
    assert module.max_steps == cfg.stage.max_steps and module.discriminator is not None
    # offline smoke runs train against trained ST-LPIPS (AlexNet), never a random LPIPS backbone
    assert type(module.lpips).__name__ == "STLPIPSLoss" and module.lpips.net_name == "alex"
    names = {type(c).__name__ for c in trainer.callbacks}
    assert {"AtomicCheckpoint", "ModelFileExport"} <= names
    assert type(trainer.strategy.checkpoint_io).__name__ == "AtomicCheckpointIO"
    assert Path(trainer.default_root_dir) == tmp_path
    if name == "smoke_pframe":
        assert [module.unroll_length(s) for s in (0, 99, 100, 250, 399, 450)] == [2, 2, 3, 4, 6, 6]


@pytest.mark.parametrize(
    "experiment, key",
    [
        ("smoke_pframe", "stage.flow_loss.relative"),
        ("smoke_pframe", "stage.flow_warmup_steps"),
        ("smoke_pframe", "stage.conditional_d"),
        ("smoke_iframe", "stage.log_images_every_n_steps"),
        ("smoke_iframe", "stage.frame_sampling"),
        ("smoke_iframe", "loss.w_lpips"),
    ],
)
def test_a_missing_key_is_a_config_error_naming_it(experiment, key):
    """conf/ is the only source of defaults: the trainer reads no key with a fallback value of its own."""
    from gvc.errors import ConfigError

    stage2 = ["stage.allow_random_iframe=true"] if "pframe" in experiment else []
    cfg = compose_cfg(experiment, ["torch_num_threads=1", *stage2, f"~{key}"])
    with pytest.raises(ConfigError, match=f"{key} is missing"):
        build_module(cfg, instantiate)


@pytest.mark.parametrize(
    "key",
    [
        "data.cache",
        "data.seed",
        "data.synthetic.seed",
        "callbacks.checkpoint.every_n_steps",
        "logger.csv.flush_logs_every_n_steps",
    ],
)
def test_a_missing_constructor_argument_is_named_before_the_run(key, tmp_path):
    """ClipDataModule, AtomicCheckpoint and ResumableCSVLogger take keyword-only arguments without defaults: a
    config without one is a ConfigError naming the key at the start-up check, not a TypeError from Hydra."""
    from gvc.errors import ConfigError

    data = ["data=synthetic"] if key.startswith("data.synthetic") else []
    cfg = compose_cfg("smoke_iframe", [*data, f"paths.output_dir={tmp_path / 'run'}", f"~{key}"])
    with pytest.raises(ConfigError, match="^" + re.escape(key) + " is missing"):
        check_config(cfg)
    assert not (tmp_path / "run").exists()
