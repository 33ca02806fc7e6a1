"""gvc: GAN-based low-latency learned video codec."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    """conf/: the Hydra configs of train.py and evaluate.py and the one source of every default.

    The one way to find it, for every reader (train.py, evaluate.py, gvc.eval.defaults, the demo, the tests
    and the benchmarks). An installed wheel holds it as package data beside this file (``gvc/conf/``: the
    ``gvc.conf`` entry of pyproject.toml's ``package-dir``); a source checkout, installed editable or not,
    keeps it at the repository root beside ``gvc/``. Raises ConfigError when neither holds ``train.yaml``
    and ``evaluate.yaml``.
    """
    here = Path(__file__).resolve().parent
    candidates = (here / "conf", here.parent / "conf")
    for folder in candidates:
        if (folder / "train.yaml").is_file() and (folder / "evaluate.yaml").is_file():
            return folder
    from gvc.errors import ConfigError

    raise ConfigError(
        f"gvc's configs (train.yaml, evaluate.yaml) are in neither {candidates[0]} (an installed wheel) nor "
        f"{candidates[1]} (a source checkout): reinstall gvc"
    )


__all__ = ["config_dir"]
