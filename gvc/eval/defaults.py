"""The defaults of the evaluation: conf/evaluate.yaml, the one source of every evaluation key and of the
baseline codecs' settings (read here, without Hydra; evaluate.py composes the same file through Hydra)."""

from __future__ import annotations

import copy
import functools
from datetime import datetime
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gvc import config_dir
from gvc.errors import ConfigError


def _now(pattern: str) -> str:
    return datetime.now().strftime(pattern)


@functools.cache
def _evaluate_yaml() -> dict[str, Any]:
    """conf/evaluate.yaml, unresolved, with its defaults list applied: the ``eval_data`` group (null or a
    conf/eval_data/*.yaml) becomes the ``dataset`` key, as evaluate.py passes it. Read once per process."""
    conf = config_dir()  # ConfigError when gvc's conf/ is not installed
    path = conf / "evaluate.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    dataset: dict[str, Any] | None = None
    for entry in raw.pop("defaults", []):
        if entry == "_self_":
            continue
        if not isinstance(entry, dict) or set(entry) - {"eval_data", "eval_preset"} or len(entry) != 1:
            raise ConfigError(
                f"{path}: defaults entry {entry!r} is not understood (only eval_data, eval_preset)"
            )
        if entry.get("eval_preset") is not None:
            raise ConfigError(
                f"{path}: the default eval_preset must be null (a preset is chosen on the command line)"
            )
        if entry.get("eval_data") is not None:
            group = conf / "eval_data" / f"{entry['eval_data']}.yaml"
            dataset = OmegaConf.to_container(OmegaConf.load(group), resolve=False)
    if "dataset" in raw:
        raise ConfigError(f"{path}: set the dataset through the eval_data group, not a `dataset` key")
    raw["dataset"] = dataset
    return raw


def default_config() -> dict[str, Any]:
    """The default of every evaluation key: conf/evaluate.yaml composed as evaluate.py does with no overrides
    (interpolations resolved, ``${now:...}`` to the current time, like Hydra's resolver of that name)."""
    if not OmegaConf.has_resolver("now"):  # Hydra registers the same one (evaluate.py); without Hydra: ours
        OmegaConf.register_new_resolver("now", _now, use_cache=True)
    try:
        return OmegaConf.to_container(OmegaConf.create(copy.deepcopy(_evaluate_yaml())), resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"conf/evaluate.yaml: {' '.join(str(err).split())}") from None


def default_codecs() -> dict[str, dict[str, Any]]:
    """The baseline codecs' default specs: the ``baselines`` of conf/evaluate.yaml (name -> encoder, args,
    preset, q_range, q_step, format, ext); a fresh copy per call."""
    return copy.deepcopy(_evaluate_yaml()["baselines"])


__all__ = ["default_codecs", "default_config"]
