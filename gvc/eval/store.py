"""Results on disk, one JSON file per (video, codec, setting) point: a re-run with the same inputs skips it.

``points/<video>__<codec>__<setting>__<hash>.json`` (+ ``.npy`` Inception patch features for FID/KID). The hash
covers everything the result depends on: the video's identity (path, size, mtime, frames read, colour
convention), the metric configuration, the codec's fixed settings (encoder, arguments, GOP / the model file's
sha256) and the setting itself (target bpp and tolerance, or q). Writes are atomic (temp file + rename), so an
interrupted run leaves only whole points behind; a point of another format version is recomputed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from gvc.eval.source import stable_hash

RESULTS_VERSION = 2


def json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(label))


class ResultStore:
    """Point files under ``root/points``; keys from :meth:`key`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.dir = self.root / "points"

    def key(self, video: str, codec: str, setting: str, identity: Any) -> str:
        return f"{_safe(video)}__{_safe(codec)}__{_safe(setting)}__{stable_hash(identity)}"

    def load(self, key: str) -> dict[str, Any] | None:
        path = self.dir / f"{key}.json"
        if not path.is_file():
            return None
        try:
            point = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            return None
        if point.get("version") != RESULTS_VERSION:
            return None
        if point.get("features") and not (self.dir / point["features"]).is_file():
            return None
        return point

    def save(self, key: str, point: dict[str, Any], features: np.ndarray | None = None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        point["version"] = RESULTS_VERSION
        point["key"] = key
        if features is not None:
            np.save(self.dir / f"{key}.npy", features)
            point["features"] = f"{key}.npy"
        tmp = self.dir / f"{key}.json.tmp"
        tmp.write_text(json.dumps(_finite_json(point), indent=1, default=json_default))
        tmp.replace(self.dir / f"{key}.json")

    def features(self, point: dict[str, Any]) -> np.ndarray | None:
        name = point.get("features")
        return np.load(self.dir / name) if name else None

    def load_array(self, key: str) -> np.ndarray | None:
        path = self.dir / f"{key}.npy"
        return np.load(path) if path.is_file() else None

    def save_array(self, key: str, array: np.ndarray) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        np.save(self.dir / f"{key}.npy", array)


def _finite_json(obj: Any) -> Any:
    """inf/nan -> None so that the files are strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_json(v) for v in obj]
    return obj
