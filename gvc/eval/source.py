"""The source clip of an evaluation: its first N frames as 8-bit 4:2:0 planes, a raw I420 copy for encoders
that read files, and the conversion of (source, decoded) frame pairs to what the metrics read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gvc.data.io import YUVFrame, open_video, write_yuv, yuv420_to_rgb
from gvc.errors import VideoFormatError
from gvc.eval.metrics import Frame


class SourceVideo:
    """The first ``frames`` frames of ``path`` (all when None) read with the run's ``colour`` convention.

    Attributes: ``path``, ``name`` (file stem), ``width``, ``height``, ``fps``, ``frames`` (list of YUVFrame),
    ``colour`` (matrix, full_range, chroma_upsample as the reader resolved them: a container that states its
    range and matrix is read as it says; entries of ``colour`` that are None are left to the reader) and ``raw``: a raw 8-bit I420 file of exactly these frames
    under ``work_dir`` (what ffmpeg and external encoders read).
    """

    def __init__(self, path: Path, frames: int | None, colour: Mapping[str, Any], work_dir: Path):
        self.path = Path(path)
        self.requested_colour = {k: v for k, v in dict(colour).items() if v is not None}
        with open_video(self.path, **self.requested_colour) as reader:
            count = len(reader) if frames is None else min(int(frames), len(reader))
            self.frames = [YUVFrame(*(np.array(p) for p in f)) for f in reader.iter_yuv(0, count)]  # writable
            self.width, self.height, self.fps = reader.width, reader.height, float(reader.fps)
            # the convention actually used: what the container states, else the configured default
            self.colour = {"matrix": reader.matrix, "full_range": bool(reader.full_range),
                           "chroma_upsample": reader.chroma_upsample}  # fmt: skip
        if not self.frames:
            raise VideoFormatError(f"{self.path}: no frames")
        self.name = self.path.stem
        work_dir.mkdir(parents=True, exist_ok=True)
        self.raw = work_dir / f"{self.name}_{self.width}x{self.height}_{self.fps:g}.yuv"
        write_yuv(self.raw, self.frames, self.fps)
        expected = self.count * self.width * self.height * 3 // 2
        if self.raw.stat().st_size != expected:
            raise VideoFormatError(f"{self.raw}: wrote {self.raw.stat().st_size} bytes, expected {expected}")

    @property
    def count(self) -> int:
        return len(self.frames)

    @property
    def pixels(self) -> int:
        """frames x width x height of the unpadded source: the denominator of every bpp."""
        return self.count * self.width * self.height

    def identity(self) -> dict[str, Any]:
        """What a cached result depends on: the file (path, size, mtime) and the frames read."""
        st = self.path.stat()
        return {
            "path": str(self.path.resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "frames": self.count,
            "colour": self.colour,
            "requested_colour": self.requested_colour,
        }

    def to_frame(self, f: YUVFrame) -> Frame:
        rgb = yuv420_to_rgb(f.y, f.u, f.v, self.colour["matrix"], self.colour["full_range"],
                            self.colour["chroma_upsample"])  # fmt: skip
        return Frame(f.y, f.u, f.v, rgb[None])

    def pairs(self, decoded: Sequence[YUVFrame]) -> Iterator[tuple[Frame, Frame]]:
        """(source, decoded) Frame pairs; the decoded video must have the source's frame count and size."""
        if len(decoded) != self.count:
            raise VideoFormatError(f"{self.path}: decoded {len(decoded)} frames, expected {self.count}")
        for ref, dist in zip(self.frames, decoded):
            if dist.y.shape != ref.y.shape:
                raise VideoFormatError(f"decoded frame is {dist.y.shape[::-1]}, source {ref.y.shape[::-1]}")
            yield self.to_frame(ref), self.to_frame(dist)


def stable_hash(obj: Any) -> str:
    """16 hex digits of the sha256 of ``obj`` as sorted JSON (cache keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_dataset(dataset: Mapping[str, Any]) -> list[Path]:
    """Source files of a dataset config (MCL-JCV: ``root``, ``sequences`` [1..30], ``pattern`` with ``{index}``
    and a glob for the fps, e.g. ``videoSRC{index:02d}_1920x1080_*.yuv``). Missing files raise VideoFormatError."""
    root = Path(str(dataset["root"])).expanduser()
    if not root.is_dir():
        raise VideoFormatError(f"dataset root {root} does not exist; set eval_data.root (e.g. MCL_JCV_ROOT)")
    out, missing = [], []
    for index in dataset["sequences"]:
        pattern = str(dataset["pattern"]).format(index=int(index))
        found = sorted(root.glob(pattern))
        if len(found) != 1:
            missing.append(f"{pattern} ({len(found)} matches)")
        else:
            out.append(found[0])
    if missing:
        raise VideoFormatError(f"dataset {root}: missing or ambiguous sequences: {', '.join(missing)}")
    return out
