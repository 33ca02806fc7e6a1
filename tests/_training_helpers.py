"""Shared helpers of the training tests: compose tiny CPU configs and run stages in-process."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gvc import config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = config_dir()


def model_kwargs(name: str) -> tuple[dict, dict]:
    """conf/model/<name>.yaml's I-frame and P-frame constructor kwargs (interpolations resolved, no _target_)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{name}.yaml"), resolve=True)
    i, p = dict(cfg["iframe"]), dict(cfg["pframe"])
    i.pop("_target_")
    p.pop("_target_")
    return i, p


def variable_rate_model_file(path, levels: int):
    """A random-init smoke I-frame codec with `levels` rate levels (0: single-rate) saved as a model file at
    `path`; its latents are scaled to a few units, so the levels span a real range of rates. Returns path."""
    import torch

    from gvc.codec.modelfile import save_model_file
    from gvc.models.iframe import IFrameCodec

    torch.manual_seed(0)
    model = IFrameCodec(**{**model_kwargs("smoke")[0], "rate_levels": levels})
    with torch.no_grad():
        model.g_a.net[-1].weight.mul_(20.0)
    save_model_file(path, model)
    return path


#: overrides of fast_overrides that only stage 2 has (a stage-1 config refuses stage 2's keys)
PFRAME_ONLY = ("++stage.flow_warmup_steps=0",)


def compose_cfg(experiment: str, overrides: list[str] = (), return_hydra_config: bool = False):
    """`train.yaml` + `experiment` + `overrides`, as train.py composes it; PFRAME_ONLY overrides are left out
    for a stage-1 experiment."""
    if "iframe" in experiment:
        overrides = [o for o in overrides if o not in PFRAME_ONLY]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[f"+experiment={experiment}", *overrides],
            return_hydra_config=return_hydra_config,
        )


def fast_overrides(out_dir, max_steps: int, every: int = 0, synthetic_clips: int = 8) -> list[str]:
    """Tiny, quiet, deterministic CPU settings on synthetic 64x64 clips (no video decoding)."""
    return [
        f"paths.output_dir={out_dir}",
        "data=synthetic",
        f"data.synthetic.num_clips={synthetic_clips}",
        "data.synthetic.size=64",
        "data.batch_size=2",
        "data.num_workers=0",
        f"stage.max_steps={max_steps}",
        f"callbacks.checkpoint.every_n_steps={every}",
        "callbacks.progress=null",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=0",
        "trainer.log_every_n_steps=1",
        "deterministic=true",
        "torch_num_threads=1",
        "++stage.flow_warmup_steps=0",  # (P-frame stage) short runs: no flow warm-up unless a test asks for one
    ]


def run_train(cfg) -> dict:
    from gvc.training.run import train

    return train(cfg, instantiate)


def read_metrics(out_dir) -> list[dict]:
    """All rows of every csv logger version under out_dir/csv, in file order."""
    rows = []
    for f in sorted(Path(out_dir).glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])):
        with open(f) as fh:
            rows += list(csv.DictReader(fh))
    return rows


def per_step(rows: list[dict], key: str) -> dict[int, float]:
    """{our step after the update: value} of a per-step metric (rows carrying train/step)."""
    out = {}
    for r in rows:
        if r.get("train/step") and r.get(key):
            out[int(float(r["train/step"]))] = float(r[key])
    return out


def state_equal(a: dict, b: dict) -> list[str]:
    """Names of tensors that differ between two state dicts (same keys expected)."""
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def tiny_module(experiment: str, overrides: list[str] = ()):
    """The stage module of a smoke experiment (tiny models, random-init LPIPS) built as train.py builds it."""
    from gvc.training.run import build_module

    cfg = compose_cfg(experiment, ["torch_num_threads=1", *overrides])
    return build_module(cfg, instantiate)


def synthetic_batches(n: int, t: int, seed: int = 0) -> list:
    """`n` batches of 2 synthetic 64x64 clips of `t` frames (float (2, t, 3, 64, 64) in [0, 1]), seeds from `seed`."""
    from gvc.data.datasets import make_synthetic_clip

    return [
        torch.stack([make_synthetic_clip(t, 64, 64, seed=seed + 2 * i + j)[0] for j in range(2)])
        for i in range(n)
    ]


def fit_on_batches(module, batches: list, max_steps: int | None = None, callbacks=()):
    """Fit `module` on fixed batches (tensors) in order, one process, no logger/checkpoints; returns the trainer."""
    import lightning as L
    from torch.utils.data import DataLoader

    if max_steps is not None:
        module.max_steps = max_steps
    loader = DataLoader(batches, batch_size=None, shuffle=False)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=list(callbacks),
    )
    trainer.fit(module, train_dataloaders=loader)
    return trainer


def clone_state(module, prefix: str = "") -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k.startswith(prefix)}


def dis_flow(preset: str):
    """gvc.models.flow.DISFlow with conf/model/smoke.yaml's flow kwargs and the given preset."""
    from omegaconf import OmegaConf

    from gvc.models.flow import DISFlow

    node = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "smoke.yaml").flow)
    node.pop("_target_")
    return DISFlow(**{**node, "preset": preset})
