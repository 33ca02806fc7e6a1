"""Raw planar 8-bit YUV 4:2:0 (I420): the byte layout (used by every format here), the MCL-JCV file names,
the raw reader and writer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gvc.data.io.base import DEFAULT_FPS, VideoReader, VideoWriter, YUVFrame, check_even, check_file
from gvc.data.io.colour import Colour
from gvc.errors import VideoFormatError

RAW_EXTENSIONS = (".yuv",)


def frame_bytes(width: int, height: int) -> int:
    """Bytes of one I420 frame."""
    return width * height * 3 // 2


def split_planes(buf, width: int, height: int) -> YUVFrame:
    """I420 bytes (Y, then U, then V) -> YUVFrame views of ``buf``."""
    a = np.frombuffer(buf, dtype=np.uint8)
    n = width * height
    c = n // 4
    return YUVFrame(
        a[:n].reshape(height, width),
        a[n : n + c].reshape(height // 2, width // 2),
        a[n + c : n + 2 * c].reshape(height // 2, width // 2),
    )


def join_planes(frame: YUVFrame) -> bytes:
    """YUVFrame -> I420 bytes."""
    return b"".join(np.ascontiguousarray(p, dtype=np.uint8).tobytes() for p in frame)


_SIZE_RE = re.compile(r"(?<![0-9])(\d{2,5})x(\d{2,5})(?![0-9])", re.IGNORECASE)
_FPS_AFTER_SIZE_RE = re.compile(r"^[_\-.](\d+(?:\.\d+)?)(?:fps|hz|p)?(?![0-9a-z])", re.IGNORECASE)
_FPS_ANYWHERE_RE = re.compile(r"(?<![0-9a-z])(\d+(?:\.\d+)?)(?:fps|hz)(?![0-9a-z])", re.IGNORECASE)


def parse_yuv_name(name: str) -> tuple[int | None, int | None, float | None]:
    """(width, height, fps) from a raw-video file name, None where absent.

    Understands ``name_1920x1080_30.yuv`` (MCL-JCV ``videoSRC01_1920x1080_30.yuv``: the number after the size is
    the fps) and HEVC/UVG style ``Beauty_1920x1080_120fps_420_8bit_YUV.yuv``.
    """
    stem = Path(name).name
    m = _SIZE_RE.search(stem)
    if not m:
        return None, None, None
    w, h = int(m.group(1)), int(m.group(2))
    fps = None
    f = _FPS_AFTER_SIZE_RE.match(stem[m.end() :])
    if f:
        fps = float(f.group(1))
    else:
        f = _FPS_ANYWHERE_RE.search(stem)
        if f:
            fps = float(f.group(1))
    return w, h, fps


def raw_yuv_name(path, width: int, height: int, fps: float) -> Path:
    """The name a raw output must carry to be read back: ``<name>_<W>x<H>_<fps>.yuv`` (MCL-JCV naming).

    A name that already states this size and frame rate is kept; one that states another size or frame rate is
    an error (the file would be read back wrong).
    """
    p = Path(path)
    w, h, f = parse_yuv_name(p.name)
    if w is None:
        return p.with_name(f"{p.stem}_{width}x{height}_{fps:g}{p.suffix or '.yuv'}")
    if (w, h) != (width, height):
        raise VideoFormatError(
            f"{p}: the name says {w}x{h} but the video is {width}x{height}; a raw .yuv is read back by its name: "
            f"use e.g. {p.stem.replace(f'{w}x{h}', f'{width}x{height}')}.yuv"
        )
    if f is not None and abs(f - fps) > 1e-3 * fps:
        raise VideoFormatError(f"{p}: the name says {f:g} fps but the video is {fps:g} fps")
    if f is None:
        return p.with_name(p.name.replace(f"{w}x{h}", f"{w}x{h}_{fps:g}", 1))
    return p


class RawYUVReader(VideoReader):
    """Raw planar 8-bit YUV 4:2:0 (I420) file; frames are read by seeking, never the whole file.

    ``width``/``height``/``fps`` default to what the file name says (:func:`parse_yuv_name`); fps falls back to
    ``default_fps`` (30). The file states no colour: BT.709 full range unless ``matrix``/``full_range`` are given.
    """

    def __init__(
        self,
        path,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        default_fps: float = DEFAULT_FPS,
        **color,
    ):
        super().__init__(**color)
        self.path = Path(path)
        check_file(self.path)
        nw, nh, nfps = parse_yuv_name(self.path.name)
        if "10bit" in self.path.name.lower() or "16bit" in self.path.name.lower():
            raise VideoFormatError(
                f"{self.path}: the name says more than 8 bits per sample; only 8-bit 4:2:0 raw video is read "
                "(convert with ffmpeg -pix_fmt yuv420p)"
            )
        width, height = width or nw, height or nh
        if not width or not height:
            raise VideoFormatError(
                f"{self.path}: raw .yuv has no header and no WxH in its name; pass width= and height= "
                "(--width/--height) or rename it like name_1920x1080_30.yuv"
            )
        self.width, self.height = int(width), int(height)
        check_even(self.path, self.width, self.height)
        self.fps = float(fps or nfps or default_fps)
        self._set_colour(Colour(None, None))
        self.frame_bytes = frame_bytes(self.width, self.height)
        size = self.path.stat().st_size
        if size == 0:
            raise VideoFormatError(f"{self.path}: file is empty (zero frames)")
        if size % self.frame_bytes:
            raise VideoFormatError(
                f"{self.path}: size {size} bytes is not a whole number of {self.width}x{self.height} 4:2:0 frames "
                f"({self.frame_bytes} bytes each, {size / self.frame_bytes:.3f} frames); check width/height "
                "or that the file is 8-bit 4:2:0"
            )
        self.num_frames = size // self.frame_bytes
        self._fh = None

    def _read_at(self, fh, offset: int, index: int) -> YUVFrame:
        fh.seek(offset)
        buf = fh.read(self.frame_bytes)
        if len(buf) != self.frame_bytes:
            raise VideoFormatError(f"{self.path}: frame {index} is truncated (file changed while reading?)")
        return split_planes(buf, self.width, self.height)

    def _read_yuv(self, index: int) -> YUVFrame:
        if self._fh is None:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        return self._read_at(self._fh, index * self.frame_bytes, index)

    def _iter_yuv(self, start: int, stop: int) -> Iterator[YUVFrame]:
        with open(self.path, "rb") as fh:
            for i in range(start, stop):
                yield self._read_at(fh, i * self.frame_bytes, i)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class FileWriter(VideoWriter):
    """A writer of one binary file: ``_header()`` bytes once, then ``_frame_prefix`` + I420 bytes per frame."""

    _frame_prefix = b""

    def _header(self) -> bytes:
        return b""

    def _open(self, tmp: Path) -> None:
        self._fh = open(tmp, "wb")  # noqa: SIM115 - closed in _finish()
        self._fh.write(self._header())

    def _write(self, f: YUVFrame) -> None:
        self._fh.write(self._frame_prefix + join_planes(f))

    def _finish(self) -> None:
        fh, self._fh = getattr(self, "_fh", None), None
        if fh is not None:
            fh.close()


class YUVWriter(FileWriter):
    """Writes raw planar I420 (no header: the size and fps belong in the name, see :func:`raw_yuv_name`)."""
