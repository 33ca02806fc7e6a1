"""Typed structured configs of the training stages: one dataclass per ``stage.name`` (conf/stage/iframe.yaml,
conf/stage/pframe.yaml), validated by OmegaConf.

The dataclasses hold types only: every field is ``MISSING``, so conf/ stays the one place where a value lives
(docs/ARCHITECTURE.md, *Configuration*). :func:`stage_settings` merges a composed ``stage`` node onto its
schema; OmegaConf then converts and checks every value (``stage.lr=abc``, ``stage.quantization.mode=foo``,
``stage.unroll=[[1,x]]``) and names any key that no file set. Each problem becomes one ConfigError naming the
key, so train.py stops before a run folder exists. Which keys exist at all (with a "did you mean" for a typo)
is :mod:`gvc.training.schema`'s job, derived from the yaml files of every checked group.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from gvc.errors import ConfigError
from gvc.training.iframe import FRAME_SAMPLING
from gvc.training.schedule import FLOW_ANNEALS, QUANT_MODES

QuantizationMode = enum.Enum("QuantizationMode", {m: m for m in QUANT_MODES})
FrameSampling = enum.Enum("FrameSampling", {m: m for m in FRAME_SAMPLING})
FlowAnneal = enum.Enum("FlowAnneal", {m: m for m in FLOW_ANNEALS})


@dataclass
class QuantizationConfig:
    """stage.quantization: the bottleneck's training mode and its annealing (gvc.training.schedule)."""

    mode: QuantizationMode = MISSING
    temperature: list[float] = MISSING  # soft-round T, [start, end]
    kumaraswamy_a: list[float] = MISSING  # Kumaraswamy a, [start, end]
    anneal_steps: int = MISSING
    ste_from_step: int | None = MISSING


@dataclass
class OptimizerConfig:
    """stage.optimizer: partial constructors (``_target_``, ``_partial_``, their keyword arguments)."""

    g: dict[str, Any] = MISSING
    aux: dict[str, Any] = MISSING
    d: dict[str, Any] = MISSING


@dataclass
class StageConfig:
    """The keys both stages share (conf/stage/*.yaml documents each)."""

    name: str = MISSING
    module: dict[str, Any] = MISSING  # the stage's Lightning module, ``_target_`` + ``_partial_``
    max_steps: int = MISSING  # our steps (one G step + one D step)
    warmup_steps: int = MISSING
    lr: float = MISSING
    d_lr: float = MISSING
    aux_lr: float = MISSING
    optimizer: OptimizerConfig = MISSING
    lr_schedule: dict[str, Any] = MISSING  # ``_target_`` + ``_partial_``, called (step) -> lr factor
    grad_clip: float = MISSING  # max global grad norm; 0 = off
    max_nonfinite_in_a_row: int = MISSING
    quantization: QuantizationConfig = MISSING
    log_images_every_n_steps: int = MISSING


@dataclass
class IFrameStageConfig(StageConfig):
    """Stage 1 (conf/stage/iframe.yaml)."""

    frame_sampling: FrameSampling = MISSING


@dataclass
class FlowLossConfig:
    """stage.flow_loss: the flow regularizer and its annealing (gvc.training.schedule.flow_weight)."""

    enabled: bool = MISSING
    relative: bool = MISSING
    start: float = MISSING
    end: float = MISSING
    rate_lambda: float | None = MISSING
    anneal: FlowAnneal = MISSING
    anneal_share: float = MISSING
    anneal_steps: int | None = MISSING


@dataclass
class PFrameStageConfig(StageConfig):
    """Stage 2 (conf/stage/pframe.yaml)."""

    iframe_ckpt: str | None = MISSING
    allow_random_iframe: bool = MISSING
    unroll: list[list[int]] = MISSING  # [[until_step, T], ...]
    flow_warmup_steps: int = MISSING
    flow_pretrain_steps: int = MISSING  # the flow codec alone, as an autoencoder of the reference flow
    residual_lr: float | None = MISSING
    conditional_d: bool = MISSING
    flow_loss: FlowLossConfig = MISSING
    activation_checkpointing: bool = MISSING


#: stage.name -> its schema
STAGE_SCHEMAS: dict[str, type[StageConfig]] = {"iframe": IFrameStageConfig, "pframe": PFrameStageConfig}


def _one_line(err: OmegaConfBaseException) -> str:
    return " ".join(str(err).split("\n", 1)[0].split())


def typed_stage(node: DictConfig | dict) -> DictConfig:
    """``node`` (a composed ``stage``) merged onto the schema of its ``name``: every value converted to its
    field's type. ConfigError names the key of a bad value, an unknown key or a key that no file set."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    name = plain.get("name")
    schema = STAGE_SCHEMAS.get(str(name))
    if schema is None:
        raise ConfigError(f"stage.name={name!r}: use stage=iframe or stage=pframe")
    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema), plain)
    except ConfigKeyError as err:
        raise ConfigError(
            f"unknown config key stage.{err.full_key}: conf/stage/{name}.yaml has no such key"
        ) from None
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        value = OmegaConf.select(OmegaConf.create(plain), key) if key else None
        where = f"stage.{key}={value!r}" if key else "stage"
        raise ConfigError(f"{where}: {_one_line(err)}") from None
    missing = sorted(OmegaConf.missing_keys(typed))
    if missing:
        keys = ", ".join(f"stage.{k}" for k in missing)
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"{keys} {verb} missing: conf/stage/{name}.yaml gives every key of stage {name}")
    return typed


def stage_settings(node: DictConfig | dict) -> dict:
    """The checked stage settings as a plain dict (enums as their names), as the stage modules take them."""
    return OmegaConf.to_container(typed_stage(node), resolve=True, enum_to_str=True)
