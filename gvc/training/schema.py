"""The training config's schema, derived from conf/: a key of ``stage``, ``loss``, ``model``, ``rate`` or ``data``
(or a top-level key) is known when some yaml of conf/ sets it (a file of that group, conf/train.yaml or an
experiment), and its value must have a type one of those files gives it. :func:`check_schema` refuses an
unknown key (also one added with ``+``) and a value of the wrong type with one ConfigError naming the key, so
train.py stops before a run folder exists (README.md, *The two commands*: one `error:` line, exit status 2).

Types: a number where the yaml has a float (an integer is a number too), an integer where it has only integers,
true/false where it has a bool, a list where it has a list, a mapping where it has one. A key that the yaml
files only set to null or to an interpolation (``${...}``) takes any value; strings are not checked. The stage
settings also have a structured config (gvc.training.stage_config), which checks their types first, per stage; the
keys it leaves open (an optimizer's keyword arguments, e.g. ``stage.optimizer.g.betas``) are checked here.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gvc import config_dir
from gvc.errors import ConfigError

#: the groups whose keys are checked one by one (the others, e.g. trainer, callbacks, logger, take any key)
CHECKED_GROUPS = ("stage", "loss", "model", "rate", "data")
_ANY = "any"


class _Node:
    """The types the yaml files give one key, and (for mappings) the keys below it."""

    __slots__ = ("children", "types")

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.children: dict[str, _Node] = {}

    def add(self, value: Any) -> None:
        self.types.add(_kind(value))
        if isinstance(value, dict):
            for k, v in value.items():
                self.children.setdefault(str(k), _Node()).add(v)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return _ANY if "${" in value else "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return _ANY


def _load(path: Path) -> dict:
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(data, dict):
        return {}
    data.pop("defaults", None)
    return data


def _is_global(path: Path) -> bool:
    """A group file with a `# @package _global_` header (its keys are top-level paths)."""
    head = path.read_text(encoding="utf-8").lstrip().splitlines()[:1]
    return bool(head) and head[0].replace(" ", "") == "#@package_global_"


@functools.cache
def _schema(conf_dir: Path | None = None) -> tuple[_Node, frozenset[str]]:
    """(schema of the checked groups, known top-level keys) of `conf_dir` (None: gvc.config_dir(), what
    train.py composes), read once per process."""
    conf_dir = config_dir() if conf_dir is None else Path(conf_dir)
    root = _Node()
    root.types.add("dict")
    top: set[str] = {"hydra"} | {p.name for p in conf_dir.iterdir() if p.is_dir()}
    globals_ = [conf_dir / "train.yaml", *sorted((conf_dir / "experiment").glob("*.yaml"))]
    for group in CHECKED_GROUPS:
        node = root.children.setdefault(group, _Node())
        for f in sorted((conf_dir / group).glob("*.yaml")):
            if _is_global(f):  # e.g. conf/rate/multi.yaml: sets rate.* and model.*
                globals_.append(f)
            else:
                node.add(_load(f))
    for f in globals_:
        data = _load(f)
        data.pop("hydra", None)
        top |= set(data)
        for group in CHECKED_GROUPS:
            if isinstance(data.get(group), dict):
                root.children[group].add(data[group])
    return root, frozenset(top)


def _known_paths(node: _Node, prefix: str) -> list[str]:
    out = []
    for k, child in node.children.items():
        out.append(f"{prefix}{k}")
        out += _known_paths(child, f"{prefix}{k}.")
    return out


def _did_you_mean(key: str, root: _Node, top: frozenset[str]) -> str:
    known = _known_paths(root, "") + sorted(top)
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if not close:
        close = [k for k in known if k.endswith("." + leaf)][:1]
    return f"; did you mean {close[0]}?" if close else ""


def _unknown(key: str, where: str, root: _Node, top: frozenset[str]) -> ConfigError:
    return ConfigError(f"unknown config key {key}: {where} sets it{_did_you_mean(key, root, top)}")


def _type_problem(value: Any, types: set[str]) -> str | None:
    """What is wrong with ``value`` for a key the yaml files give ``types``, or None."""
    if _ANY in types or types <= {"null"} or (value is None and "null" in types):
        return None
    kind = _kind(value)
    if kind == _ANY or kind in types or (kind == "int" and "float" in types):
        return None
    if "float" in types:
        return "is not a number (want a float)"
    if "int" in types:
        return "is not an integer (want an integer)"
    if "bool" in types:
        return "is not true or false (want a bool)"
    if "list" in types:
        return "is not a list (want a list, e.g. [a,b])"
    if "dict" in types:
        return "is not a mapping of keys (want a config group entry)"
    return None  # strings: any value


def _walk(value: Any, node: _Node, key: str, root: _Node, top: frozenset[str], types: bool) -> None:
    problem = _type_problem(value, node.types) if types else None
    if problem:
        raise ConfigError(f"{key}={value!r} {problem}")
    if isinstance(value, dict) and node.children:
        group = key.split(".", 1)[0]
        for k, v in value.items():
            child = node.children.get(str(k))
            if child is None:
                raise _unknown(
                    f"{key}.{k}", f"no conf/{group}/*.yaml, conf/train.yaml or experiment", root, top
                )
            _walk(v, child, f"{key}.{k}", root, top, types)


def _container(node) -> Any:
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException:  # an interpolation that does not resolve here: checked where it is used
        return OmegaConf.to_container(node, resolve=False)


def check_schema(cfg: DictConfig, conf_dir: Path | None = None, unknown_only: bool = False) -> None:
    """Raise ConfigError naming the first unknown key (top level and under the checked groups) or, unless
    ``unknown_only``, value of the wrong type; see the module doc."""
    root, top = _schema(None if conf_dir is None else Path(conf_dir))
    for key in cfg:
        if key not in top:
            raise _unknown(str(key), "no conf/train.yaml, config group or experiment", root, top)
    for group in CHECKED_GROUPS:
        node = cfg.get(group)
        if node is None:
            continue
        _walk(_container(node), root.children[group], group, root, top, not unknown_only)
