"""The stage settings are typed structured configs (gvc.training.stage_config): their dataclasses list exactly the
keys of conf/stage/*.yaml, every experiment validates, and OmegaConf's conversion names the key of a bad value
or of one that no file set, as one ConfigError, before a run folder exists."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from omegaconf import OmegaConf

from gvc.errors import ConfigError
from gvc.training.stage_config import STAGE_SCHEMAS, stage_settings, typed_stage
from tests._training_helpers import CONF, compose_cfg

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _schema_keys(cls, prefix: str = "") -> set[str]:
    """The dotted keys of a schema dataclass: its fields, and the fields of nested schema dataclasses."""
    keys = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        keys.add(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            keys |= _schema_keys(hints[f.name], f"{prefix}{f.name}.")
    return keys


def _yaml_keys(node: dict, nested: set[str], prefix: str = "") -> set[str]:
    keys = set()
    for k, v in node.items():
        keys.add(prefix + k)
        if prefix + k in nested and isinstance(v, dict):
            keys |= _yaml_keys(v, nested, f"{prefix}{k}.")
    return keys


@pytest.mark.parametrize("name", sorted(STAGE_SCHEMAS))
def test_the_schema_lists_exactly_the_keys_of_the_stage_yaml(name):
    yaml = OmegaConf.to_container(OmegaConf.load(CONF / "stage" / f"{name}.yaml"))
    schema = _schema_keys(STAGE_SCHEMAS[name])
    nested = {k.rsplit(".", 1)[0] for k in schema if "." in k}
    assert _yaml_keys(yaml, nested) == schema


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_validates(name):
    settings = stage_settings(compose_cfg(name).stage)
    assert settings["name"] in STAGE_SCHEMAS
    assert isinstance(settings["lr"], float) and isinstance(settings["quantization"]["mode"], str)


def test_values_are_converted_to_their_types():
    settings = stage_settings(compose_cfg("smoke_iframe", ["stage.lr=1", "stage.grad_clip=2"]).stage)
    assert settings["lr"] == 1.0 and isinstance(settings["lr"], float)
    assert isinstance(settings["grad_clip"], float) and settings["frame_sampling"] == "random"


@pytest.mark.parametrize(
    "experiment, override, message",
    [
        ("smoke_iframe", "stage.lr=abc", r"stage\.lr='abc': .*could not be converted to Float"),
        ("smoke_iframe", "stage.grad_clip=true", r"stage\.grad_clip=True: .*Float"),
        ("smoke_iframe", "stage.max_steps=1.5", r"stage\.max_steps=1\.5: .*Integer"),
        ("smoke_iframe", "stage.quantization.mode=nois", r"stage\.quantization\.mode='nois': .*noise, ste"),
        ("smoke_iframe", "stage.frame_sampling=all", r"stage\.frame_sampling='all': .*random, first"),
        ("smoke_pframe", "stage.unroll=[[100,x]]", r"stage\.unroll\[0\]=\[100, 'x'\]: .*'int'"),
        (
            "smoke_pframe",
            "stage.flow_loss.anneal=cosine",
            r"stage\.flow_loss\.anneal='cosine': .*linear, exp",
        ),
        ("smoke_pframe", "stage.conditional_d=maybe", r"stage\.conditional_d='maybe': .*not a valid bool"),
        ("smoke_iframe", "~stage.aux_lr", r"stage\.aux_lr is missing: conf/stage/iframe\.yaml"),
        ("smoke_pframe", "~stage.quantization.anneal_steps", r"stage\.quantization\.anneal_steps is missing"),
        ("smoke_iframe", "+stage.unroll=[[1,2]]", r"unknown config key stage\.unroll"),
    ],
)
def test_a_bad_value_or_a_missing_key_is_one_error_naming_it(experiment, override, message):
    cfg = compose_cfg(experiment, [override])
    with pytest.raises(ConfigError, match=message) as err:
        typed_stage(cfg.stage)
    assert "\n" not in str(err.value)


def test_an_unknown_stage_name_is_refused():
    with pytest.raises(ConfigError, match=r"stage\.name='both': use stage=iframe or stage=pframe"):
        typed_stage({"name": "both"})
