"""The frame type, the reader and writer base classes, and the checks every format shares.

Writers are atomic: frames go to a temporary name in the output's folder, which is renamed to the output only
when the writer is closed after success; leaving a ``with`` block on an exception (or calling :meth:`abort`)
deletes it, so a failed write never leaves a file that looks finished.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from gvc.data.color import rgb_to_yuv420, yuv420_to_rgb
from gvc.data.io.colour import DEFAULT_MATRIX, Colour, resolve_colour
from gvc.errors import VideoFormatError

DEFAULT_FPS = 30.0


class YUVFrame(NamedTuple):
    """One 8-bit 4:2:0 frame: y (H, W), u and v (H/2, W/2), numpy uint8."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


def check_even(path, width: int, height: int) -> None:
    """4:2:0 needs a positive, even width and height."""
    if width <= 0 or height <= 0:
        raise VideoFormatError(f"{path}: frame size {width}x{height} is not positive")
    if width % 2 or height % 2:
        raise VideoFormatError(
            f"{path}: size {width}x{height} is odd; 4:2:0 needs even width and height "
            f"(crop it: {crop_command(Path(path), width // 2 * 2, height // 2 * 2)})"
        )


def crop_command(path: Path, width: int, height: int) -> str:
    """The ffmpeg command that writes ``path`` cropped to ``width`` x ``height`` as an 8-bit 4:2:0 Y4M beside it,
    under another name (ffmpeg refuses to write over its input). A PNG folder is read as a glob of its frames."""
    src = (
        f"-pattern_type glob -i {shlex.quote(f'{path}/*.png')}"
        if path.is_dir()
        else f"-i {shlex.quote(str(path))}"
    )
    out = path.with_name(f"{path.stem}_{width}x{height}.y4m")
    return f"ffmpeg {src} -vf crop={width}:{height}:0:0 -pix_fmt yuv420p {shlex.quote(str(out))}"


def convert_command(path: Path) -> str:
    """The ffmpeg command that writes ``path`` as an 8-bit 4:2:0 Y4M beside it, under another name."""
    out = path.with_name(f"{path.stem}_420.y4m")
    return f"ffmpeg -i {shlex.quote(str(path))} -pix_fmt yuv420p {shlex.quote(str(out))}"


def check_file(path: Path) -> None:
    """An existing, regular, readable file."""
    if not path.exists():
        raise VideoFormatError(f"{path}: no such file (check the path)")
    if not path.is_file():
        raise VideoFormatError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise VideoFormatError(f"{path}: file is not readable (check its permissions)")


def make_parent(path: Path) -> None:
    """Create ``path``'s folder; a file in the way is a VideoFormatError naming it."""
    parent = path.parent
    for p in (parent, *parent.parents):
        if p.exists():
            if not p.is_dir():
                raise VideoFormatError(f"{path}: cannot create the output there: {p} is a file, not a folder")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VideoFormatError(f"{path}: cannot create the folder {parent} ({e.strerror or e})") from e
    if not os.access(parent, os.W_OK):
        raise VideoFormatError(f"{path}: the folder {parent} is not writable")


def temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path`` with the same suffix (muxers choose the format by it)."""
    return path.with_name(f".{path.stem}.part-{os.getpid()}{path.suffix}")


class VideoReader:
    """Random-access and streaming reader of 8-bit 4:2:0 video.

    Attributes: ``path``, ``width``, ``height``, ``fps`` (float), ``len(reader)`` = number of frames,
    ``matrix`` ('bt709'/'bt601') and ``full_range`` (bool): the YUV <-> RGB convention of :meth:`read_rgb` /
    :meth:`read_clip`, and ``colour_source``: where they come from. Pass ``matrix``/``full_range`` to override;
    None (the default) takes what the file states (container tags, Y4M XCOLORRANGE) and the default, BT.709 full
    range, only where it states nothing (raw .yuv). ``chroma_upsample``: 'nearest' or 'bilinear'.
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int

    def __init__(
        self, matrix: str | None = None, full_range: bool | None = None, chroma_upsample: str = "nearest"
    ):
        self._requested = Colour(matrix, full_range)
        self.matrix = matrix or DEFAULT_MATRIX
        self.full_range = True if full_range is None else bool(full_range)
        #: pixel (sample) aspect ratio (num, den) where the file states one (Y4M `A`), else None
        self.sample_aspect: tuple[int, int] | None = None
        #: what gvc changes in this source before coding it (4:4:4, gray, 10-bit -> 8-bit 4:2:0 ...), or None
        self.conversion: str | None = None
        self.chroma_upsample = chroma_upsample
        self.colour_source = "default"

    def _set_colour(self, stated: Colour) -> None:
        """Settle matrix/full_range from the user's request, else what the file states, else the default."""
        c, self.colour_source = resolve_colour(self.path, self._requested, stated)
        self.matrix, self.full_range = c.matrix, c.full_range

    # --- to implement -------------------------------------------------------------------------------------------
    def _read_yuv(self, index: int) -> YUVFrame:
        raise NotImplementedError

    def _iter_yuv(self, start: int, stop: int) -> Iterator[YUVFrame]:
        for i in range(start, stop):
            yield self._read_yuv(i)

    def close(self) -> None:
        """Release files/decoders; the reader may be reopened lazily by a later read."""

    # --- public ----------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_frames

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def colour(self) -> dict:
        """dict(matrix, full_range): pass to a writer to write in the source's convention."""
        return {"matrix": self.matrix, "full_range": self.full_range}

    @property
    def write_options(self) -> dict:
        """Keyword arguments for :func:`gvc.data.io.open_writer` that write a copy tagged as this source
        (colour convention; a Y4M source adds its chroma tag): ``open_writer(out, fps=r.fps, **r.write_options)``."""
        opts = dict(self.colour)
        tag = getattr(self, "chroma_tag", None)
        if tag is not None:
            opts["chroma_tag"] = tag
        return opts

    def _index(self, index: int) -> int:
        n = self.num_frames
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(f"{self.path}: frame {index} out of range (video has {n} frames)")
        return i

    def read_yuv(self, index: int) -> YUVFrame:
        """Frame ``index`` (negative counts from the end) as uint8 planes."""
        return self._read_yuv(self._index(index))

    def iter_yuv(self, start: int = 0, stop: int | None = None) -> Iterator[YUVFrame]:
        """Stream frames [start, stop) as uint8 planes, reading only those frames."""
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        if start < 0 or start > stop:
            raise IndexError(f"{self.path}: bad frame range [{start}, {stop}) of {self.num_frames} frames")
        return self._iter_yuv(start, stop)

    def __iter__(self) -> Iterator[YUVFrame]:
        return self.iter_yuv()

    def to_rgb(self, frame: YUVFrame) -> torch.Tensor:
        """YUVFrame -> float (3, H, W) in [0, 1] with this reader's colour settings."""
        return yuv420_to_rgb(*frame, self.matrix, self.full_range, self.chroma_upsample)

    def read_rgb(self, index: int) -> torch.Tensor:
        """Frame ``index`` as float RGB (3, H, W) in [0, 1]."""
        return self.to_rgb(self.read_yuv(index))

    def iter_rgb(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        """Stream frames [start, stop) as float RGB (3, H, W) in [0, 1]."""
        for f in self.iter_yuv(start, stop):
            yield self.to_rgb(f)

    def _check_clip(self, start: int, length: int) -> None:
        if length <= 0 or start < 0 or start + length > self.num_frames:
            raise IndexError(
                f"{self.path}: clip [{start}, {start + length}) outside {self.num_frames} frames"
            )

    def read_yuv_clip(self, start: int, length: int) -> YUVFrame:
        """Frames [start, start+length) stacked: y (T, H, W), u, v (T, H/2, W/2) uint8."""
        self._check_clip(start, length)
        frames = list(self.iter_yuv(start, start + length))
        if len(frames) != length:
            raise VideoFormatError(f"{self.path}: got {len(frames)} of {length} frames from {start}")
        return YUVFrame(*(np.stack(p) for p in zip(*frames)))

    def read_clip(self, start: int, length: int) -> torch.Tensor:
        """Frames [start, start+length) as float RGB (T, 3, H, W) in [0, 1]."""
        y, u, v = self.read_yuv_clip(start, length)
        return yuv420_to_rgb(y, u, v, self.matrix, self.full_range, self.chroma_upsample)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, {self.width}x{self.height}, {self.fps:g} fps, {len(self)} frames)"


# ---------------------------------------------------------------------------------------------------------------
# writers


def as_yuv(frame, matrix: str, full_range: bool) -> YUVFrame:
    """YUVFrame / (y, u, v) planes / RGB (3, H, W) float tensor in [0, 1] -> YUVFrame (numpy uint8)."""
    if isinstance(frame, tuple) and len(frame) == 3:
        planes = [p.cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p) for p in frame]
        if any(p.dtype != np.uint8 for p in planes):
            raise VideoFormatError("YUV planes to write must be uint8")
        return YUVFrame(*planes)
    if isinstance(frame, torch.Tensor | np.ndarray) and frame.ndim == 3 and frame.shape[0] == 3:
        y, u, v = rgb_to_yuv420(torch.as_tensor(frame).detach().cpu().float(), matrix, full_range)
        return YUVFrame(y.numpy(), u.numpy(), v.numpy())
    raise VideoFormatError(
        f"cannot write frame of type {type(frame).__name__}: give a YUVFrame or an RGB (3, H, W) tensor in [0, 1]"
    )


def flatten(frames) -> Iterator:
    """Expand (T, 3, H, W) tensors into frames; pass single frames through."""
    if isinstance(frames, torch.Tensor | np.ndarray) and frames.ndim == 4:
        yield from frames
        return
    for f in frames:
        if isinstance(f, torch.Tensor | np.ndarray) and f.ndim == 4:
            yield from f
        else:
            yield f


class VideoWriter:
    """Base writer: ``write(frame)`` takes a YUVFrame or an RGB float (3, H, W) / (T, 3, H, W) tensor in [0, 1].

    RGB is converted with ``matrix``/``full_range`` (2x2 chroma averaging); both are also written as the file's
    colour tags where the format has them. The size is fixed by the first frame. The file is written under a
    temporary name and appears at ``path`` only when :meth:`close` succeeds (see the module docstring).
    """

    def __init__(self, path, fps: float = DEFAULT_FPS, matrix: str = DEFAULT_MATRIX, full_range: bool = True):
        self.path = Path(path)
        self.fps = float(fps)
        self.matrix, self.full_range = matrix, bool(full_range)
        self.width = self.height = None
        self.frames_written = 0
        self._tmp: Path | None = None

    # --- to implement ---------------------------------------------------------------------------------------------
    def _open(self, tmp: Path) -> None:
        raise NotImplementedError

    def _write(self, frame: YUVFrame) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush and close the temporary file (called once, before the rename)."""

    def _discard(self) -> None:
        """Close without finishing (errors ignored); the temporary file is removed afterwards."""
        try:
            self._finish()
        except Exception:  # noqa: BLE001 - the write already failed; cleaning up must not hide that error
            pass

    def _commit(self, tmp: Path) -> None:
        os.replace(tmp, self.path)

    def _remove_tmp(self, tmp: Path) -> None:
        tmp.unlink(missing_ok=True)

    # --- public ------------------------------------------------------------------------------------------------------
    def _start(self, w: int, h: int) -> None:
        check_even(self.path, w, h)
        self.width, self.height = w, h
        make_parent(self.path)
        self._tmp = temporary_name(self.path)
        try:
            self._open(self._tmp)
        except BaseException:
            self._remove_tmp(self._tmp)
            self._tmp = None
            raise

    def write(self, frame) -> None:
        """Append one frame (or each frame of a (T, 3, H, W) tensor)."""
        for f in flatten([frame]):
            yuv = as_yuv(f, self.matrix, self.full_range)
            h, w = yuv.y.shape
            if self.width is None:
                self._start(w, h)
            elif (w, h) != (self.width, self.height):
                raise VideoFormatError(
                    f"{self.path}: frame {w}x{h} differs from the first {self.width}x{self.height}"
                )
            if yuv.u.shape != (h // 2, w // 2) or yuv.v.shape != (h // 2, w // 2):
                raise VideoFormatError(
                    f"{self.path}: U/V planes must be {w // 2}x{h // 2} for a {w}x{h} frame"
                )
            self._write(yuv)
            self.frames_written += 1

    def close(self) -> None:
        """Finish the file and move it to ``path``; on failure nothing is left at ``path`` from this writer."""
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return
        try:
            self._finish()
            self._commit(tmp)
        finally:
            self._remove_tmp(tmp)

    def abort(self) -> None:
        """Stop and delete what was written (the output path is left as it was)."""
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return
        try:
            self._discard()
        finally:
            self._remove_tmp(tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        if getattr(self, "_tmp", None) is not None:  # dropped without close(): never leave a partial file
            self.abort()
