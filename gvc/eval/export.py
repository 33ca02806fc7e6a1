"""Export of reconstructions for user studies: MCL-JCV names and format, PNG frames, side-by-side videos.

- :func:`export_name`: the MCL-JCV / HEVC-CTC raw name of a source, ``videoSRC01_1920x1080_30.yuv``
  (a source already named that way keeps its name; others become ``{stem}_{W}x{H}_{fps}.yuv``).
- :func:`export_reconstruction`: decoded 8-bit 4:2:0 frames -> ``{out}/{codec}_{setting}/{name}.yuv`` (raw I420,
  the MCL-JCV format) and, on request, a folder of PNG frames (RGB with the run's colour convention).
- :func:`side_by_side`: ``source | codec A | codec B`` (e.g. gvc and x265 at the same bpp) as an mp4.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from gvc.data.io import YUVFrame, parse_yuv_name, write_mp4, write_png_dir, write_yuv

_MCL_RE = re.compile(r"^videoSRC\d{2}_\d+x\d+_\d+(?:\.\d+)?$")


def export_name(source: str | Path, width: int, height: int, fps: float) -> str:
    """Raw-YUV file name for a reconstruction of ``source`` (keeps MCL-JCV / CTC names that carry WxH)."""
    stem = Path(source).stem
    if _MCL_RE.match(stem):
        return f"{stem}.yuv"
    w, h, _ = parse_yuv_name(Path(source).name)
    if (w, h) == (width, height):
        return f"{stem}.yuv"
    return f"{stem}_{width}x{height}_{fps:g}.yuv"


def export_reconstruction(
    frames: Sequence[YUVFrame] | Iterable[YUVFrame],
    out_dir: str | Path,
    name: str,
    fps: float,
    png: bool = False,
    **colour,
) -> dict[str, str]:
    """Write decoded frames as raw I420 ``out_dir/name`` (+ PNG folder ``out_dir/<stem>_png`` when ``png``).

    ``colour``: matrix / full_range for the PNG conversion. Returns the written paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = list(frames)
    yuv_path = out_dir / name
    write_yuv(yuv_path, frames, fps)
    out = {"yuv": str(yuv_path)}
    if png:
        png_dir = out_dir / f"{Path(name).stem}_png"
        write_png_dir(png_dir, frames, fps, **colour)
        out["png"] = str(png_dir)
    return out


def hstack_frames(parts: Sequence[YUVFrame]) -> YUVFrame:
    """Place 4:2:0 frames of equal height side by side (left to right)."""
    return YUVFrame(*(np.ascontiguousarray(np.hstack(planes)) for planes in zip(*parts)))


def side_by_side(videos: Sequence[Sequence[YUVFrame]], path: str | Path, fps: float, crf: int = 10) -> Path:
    """Write ``len(videos)`` equally long frame lists side by side as an H.264 mp4 (x264 ``crf``; 0 = lossless).

    Frames are cut to the shortest list. Returns the path.
    """
    count = min(len(v) for v in videos)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, (hstack_frames([v[i] for v in videos]) for i in range(count)), fps, crf=crf)
    return path
