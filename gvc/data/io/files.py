"""Opening videos by kind, writing them, and finding them in folders."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gvc.data.io.base import DEFAULT_FPS, VideoReader, VideoWriter, flatten
from gvc.data.io.container import CONTAINER_EXTENSIONS, AVReader, AVWriter
from gvc.data.io.png import PNG_EXTENSIONS, PNGDirReader, PNGDirWriter
from gvc.data.io.raw import RAW_EXTENSIONS, RawYUVReader, YUVWriter
from gvc.data.io.y4m import Y4M_EXTENSIONS, Y4MReader, Y4MWriter
from gvc.errors import VideoFormatError

VIDEO_EXTENSIONS = RAW_EXTENSIONS + Y4M_EXTENSIONS + CONTAINER_EXTENSIONS


def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's ffmpeg binary (for encoders and tools outside libav's API; gvc.data decodes and
    probes with PyAV)."""
    try:
        import imageio_ffmpeg
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise VideoFormatError("imageio-ffmpeg is not installed: pip install imageio-ffmpeg") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def open_video(path, width: int | None = None, height: int | None = None, fps: float | None = None, **color):
    """Open a video by kind: folder -> PNG frames, .yuv -> raw 4:2:0, .y4m -> Y4M, anything else -> PyAV.

    ``width``/``height`` only apply to raw .yuv; ``fps`` to raw .yuv and PNG folders. ``color`` = matrix,
    full_range (None: what the file states, else BT.709 full range), chroma_upsample (see :class:`VideoReader`).
    """
    p = Path(path)
    if not p.exists():
        raise VideoFormatError(f"{p}: no such file or folder (check the path)")
    if p.is_dir():
        return PNGDirReader(p, fps=fps, **color)
    ext = p.suffix.lower()
    if ext in RAW_EXTENSIONS:
        return RawYUVReader(p, width, height, fps, **color)
    if ext in Y4M_EXTENSIONS:
        return Y4MReader(p, **color)
    return AVReader(p, **color)


def open_writer(path, fps: float = DEFAULT_FPS, **kw) -> VideoWriter:
    """Writer by extension: .y4m, .yuv, a folder name without extension -> PNG frames, anything else -> libav.

    ``kw``: matrix, full_range; ``chroma_tag`` and ``sample_aspect`` for .y4m; ``crf``/``codec``/``preset`` for libav."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in Y4M_EXTENSIONS:
        kw.pop("chroma_tag", None)
        kw.pop("sample_aspect", None)
    if ext in Y4M_EXTENSIONS:
        return Y4MWriter(p, fps, **kw)
    if ext in RAW_EXTENSIONS:
        return YUVWriter(p, fps, **kw)
    if ext == "" or p.is_dir():
        return PNGDirWriter(p, fps, **kw)
    return AVWriter(p, fps, **kw)


def _write_all(writer: VideoWriter, frames: Iterable) -> int:
    with writer:
        for f in flatten(frames):
            writer.write(f)
    if writer.frames_written == 0:
        raise VideoFormatError(f"{writer.path}: no frames to write")
    return writer.frames_written


def write_y4m(path, frames: Iterable, fps: float = DEFAULT_FPS, **kw) -> int:
    """Write frames (YUVFrames or RGB tensors in [0, 1]) as Y4M; returns the number of frames."""
    return _write_all(Y4MWriter(path, fps, **kw), frames)


def write_yuv(path, frames: Iterable, fps: float = DEFAULT_FPS, **kw) -> int:
    """Write frames as raw I420 at exactly ``path``; returns the number of frames."""
    return _write_all(YUVWriter(path, fps, **kw), frames)


def write_png_dir(path, frames: Iterable, fps: float = DEFAULT_FPS, **kw) -> int:
    """Write frames as ``{i:06d}.png`` files in a folder; returns the number of frames."""
    return _write_all(PNGDirWriter(path, fps, **kw), frames)


def write_mp4(
    path, frames: Iterable, fps: float = DEFAULT_FPS, crf: int = 0, codec: str = "libx264", **kw
) -> int:
    """Encode frames with libav (libx264, crf 0 = lossless by default); returns the number of frames."""
    return _write_all(AVWriter(path, fps, crf=crf, codec=codec, **kw), frames)


def is_video_path(p: Path) -> bool:
    """True for a file with a known video extension or a folder holding PNG files."""
    if p.is_dir():
        return any(q.suffix.lower() in PNG_EXTENSIONS for q in p.iterdir())
    return p.suffix.lower() in VIDEO_EXTENSIONS


def find_videos(root) -> list[Path]:
    """Videos under ``root`` (recursively; a folder of PNGs counts as one video), sorted. A ``.txt`` list file
    gives one path per line (relative to the list's folder; ``#`` comments)."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".txt":
        out = []
        for line in root.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                p = Path(line)
                out.append(p if p.is_absolute() else root.parent / p)
        return out
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise VideoFormatError(f"{root}: no such folder or list file")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if any(f.lower().endswith(PNG_EXTENSIONS) for f in filenames) and d != root:
            out.append(d)
            dirnames[:] = []
            continue
        out += [d / f for f in filenames if f.lower().endswith(VIDEO_EXTENSIONS) and not f.startswith(".")]
        dirnames.sort()
    return sorted(out)


__all__ = [
    "VideoReader",
    "ffmpeg_exe",
    "find_videos",
    "is_video_path",
    "open_video",
    "open_writer",
    "write_mp4",
    "write_png_dir",
    "write_y4m",
    "write_yuv",
]
