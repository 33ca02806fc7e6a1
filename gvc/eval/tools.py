"""The external tools evaluation runs: the ffmpeg binary (baseline encoders, VMAF) and what it was built with.

Baseline encoders and VMAF run through the ffmpeg binary that imageio-ffmpeg ships (0.8.1: ffmpeg 9.0.2 with
libx265, libvvenc, libsvtav1, libaom and libvmaf), or through ``exe`` where a user points at another build.
"""

from __future__ import annotations

import functools
import subprocess

from gvc.data.io import ffmpeg_exe  # the one place that knows where the binary is

__all__ = ["ffmpeg_exe", "ffmpeg_has", "ffmpeg_version", "gvc_version"]


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


def gvc_version() -> dict[str, str | bool | None]:
    """The gvc that ran: package version and, in a git checkout, the commit and whether the tree had changes."""
    from importlib import metadata
    from pathlib import Path

    try:
        version = metadata.version("gvc")
    except metadata.PackageNotFoundError:
        version = "not installed"
    root = Path(__file__).resolve().parents[2]
    commit, dirty = None, None
    if (root / ".git").exists():
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.returncode == 0:
            commit = head.stdout.strip()
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True)  # fmt: skip
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"version": version, "commit": commit, "uncommitted_changes": dirty}
