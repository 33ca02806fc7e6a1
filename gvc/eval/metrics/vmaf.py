"""VMAF through libvmaf inside the ffmpeg binary (luma), per frame."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gvc.errors import MissingWeightsError
from gvc.eval.metrics.base import Frame, Metric
from gvc.eval.tools import ffmpeg_exe, ffmpeg_has


def write_yuv_frame(handle, frame: Frame) -> None:
    """Append one frame's Y, U, V planes (I420 order) to an open binary file."""
    for plane in (frame.y, frame.u, frame.v):
        handle.write(np.ascontiguousarray(plane, dtype=np.uint8).tobytes())


def vmaf_yuv_files(
    ref_path: str | os.PathLike,
    dist_path: str | os.PathLike,
    width: int,
    height: int,
    fps: float = 30.0,
    model: str = "version=vmaf_v0.6.1",
    threads: int = 0,
    exe: str | None = None,
) -> list[float]:
    """Per-frame VMAF of two raw I420 files of the same size (libvmaf reads luma only)."""
    with tempfile.TemporaryDirectory(prefix="gvc_vmaf_") as tmp:
        log = Path(tmp) / "vmaf.json"
        raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", f"{fps}"]
        cmd = [exe or ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin"]
        cmd += raw + ["-i", str(dist_path)] + raw + ["-i", str(ref_path)]
        filt = f"[0:v][1:v]libvmaf=model={model}:log_fmt=json:log_path={log}:n_threads={threads}"
        cmd += ["-lavfi", filt, "-f", "null", "-"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not log.is_file():
            raise RuntimeError(f"ffmpeg libvmaf failed: {proc.stderr.strip()[-500:]}")
        data = json.loads(log.read_text())
    return [float(f["metrics"]["vmaf"]) for f in data["frames"]]


class VMAFMetric(Metric):
    """VMAF (libvmaf inside imageio-ffmpeg's ffmpeg) of the 8-bit planes; frames are spooled to temp files."""

    name = "vmaf"
    columns = ("vmaf",)

    def __init__(self, model: str = "version=vmaf_v0.6.1", threads: int = 0, ffmpeg: str | None = None):
        self.exe = ffmpeg or ffmpeg_exe()
        if not ffmpeg_has("filters", "libvmaf", self.exe):
            raise MissingWeightsError(f"the ffmpeg at {self.exe} has no libvmaf filter")
        self.model = model
        self.threads = threads

    def info(self) -> dict[str, Any]:
        return {"model": self.model, "planes": "Y (libvmaf)"}

    def begin(self, width: int, height: int, fps: float) -> None:
        super().begin(width, height, fps)
        self._size = (width, height, fps)
        self._tmp = tempfile.TemporaryDirectory(prefix="gvc_vmaf_frames_")
        self._ref = open(Path(self._tmp.name) / "ref.yuv", "wb")  # noqa: SIM115 - closed in end()
        self._dist = open(Path(self._tmp.name) / "dist.yuv", "wb")  # noqa: SIM115

    def add(self, ref: Frame, dist: Frame) -> None:
        write_yuv_frame(self._ref, ref)
        write_yuv_frame(self._dist, dist)

    def end(self) -> dict[str, list[float]]:
        self._ref.close()
        self._dist.close()
        try:
            width, height, fps = self._size
            values = vmaf_yuv_files(
                self._ref.name, self._dist.name, width, height, fps, self.model, self.threads, self.exe
            )
        finally:
            self._tmp.cleanup()
        return {"vmaf": values}
