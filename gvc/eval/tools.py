"""The external tools evaluation runs: the ffmpeg binary (baseline encoders, VMAF) and what it was built with.

Baseline encoders and VMAF run through the ffmpeg binary that imageio-ffmpeg ships (0.8.1: ffmpeg 9.0.2 with
libx265, libvvenc, libsvtav1, libaom and libvmaf), or through ``exe`` where a user points at another build.
"""

from __future__ import annotations

import functools
import subprocess

from gvc.data.io import ffmpeg_exe  # the one place that knows where the binary is

__all__ = ["ffmpeg_exe", "ffmpeg_has", "ffmpeg_version"]


@functools.lru_cache(maxsize=32)
def _listing(exe: str, kind: str) -> tuple[str, ...]:
    proc = subprocess.run([exe, "-hide_banner", f"-{kind}"], capture_output=True, text=True)
    return tuple(line.split()[1] for line in proc.stdout.splitlines() if len(line.split()) > 1)


def ffmpeg_has(kind: str, name: str, exe: str | None = None) -> bool:
    """True when the ffmpeg binary lists ``name`` among its ``kind`` ("encoders", "decoders" or "filters")."""
    return name in _listing(exe or ffmpeg_exe(), kind)


def ffmpeg_version(exe: str | None = None) -> str:
    """First line of ``ffmpeg -version`` (recorded in results.json)."""
    proc = subprocess.run([exe or ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True)
    return proc.stdout.splitlines()[0].split(" Copyright")[0] if proc.stdout else "unknown"
