"""Containers and coded video (.mp4, .mkv, ...) through PyAV (libav as a library; no subprocess, no parsing).

- :func:`probe`: size, frame rate, codec, pixel format, colour tags and frame count (packets of the first video
  stream, counted by demuxing without decoding).
- :class:`AVReader`: decodes to 8-bit 4:2:0. Sequential reads continue the open decoder; a read that goes
  backwards or far ahead seeks to the keyframe before it (frame exact: frames are identified by their
  timestamps, or the decoder restarts from the first frame where the stream has none).
- :class:`AVWriter`: encodes (libx264 by default, crf 0 = lossless) with the colour tags of the frames written.
"""

from __future__ import annotations

import bisect
from fractions import Fraction
from pathlib import Path

import numpy as np

from gvc.data.io.base import DEFAULT_FPS, VideoReader, VideoWriter, YUVFrame, check_even, check_file
from gvc.data.io.colour import AV_COLOR_RANGE, AV_COLORSPACE, colour_from_av, matrix_name
from gvc.errors import VideoFormatError

try:  # PyAV is needed for container files only: Y4M, raw .yuv and PNG folders work without it (the GPU bundle)
    import av
except ImportError:  # pragma: no cover - a dependency of the package
    av = None

CONTAINER_EXTENSIONS = (
    ".mp4",
    ".mkv",
    ".avi",
    ".mov",
    ".webm",
    ".m4v",
    ".ts",
    ".flv",
    ".mpg",
    ".mpeg",
    ".264",
    ".265",
)
_420 = ("yuv420p", "yuvj420p")


def _require_av(path: Path) -> None:
    if av is None:
        raise VideoFormatError(f"{path}: container files (.mp4, .mkv, ...) need PyAV: pip install av")


def _open(path: Path):
    _require_av(path)
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as e:
        raise VideoFormatError(f"{path}: cannot decode a video stream from this file ({e})") from e


def _video_stream(container, path: Path):
    if not container.streams.video:
        container.close()
        raise VideoFormatError(f"{path}: the file has no video stream")
    return container.streams.video[0]


def _scan(path: Path) -> tuple[dict, list[int] | None, list[int]]:
    """(probe dict, sorted presentation timestamps (None if any packet has none), keyframe timestamps)."""
    check_file(path)
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        pts: list[int | None] = []
        keys: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe and packet.pts is not None:
                    keys.append(packet.pts)
        except av.FFmpegError as e:
            raise VideoFormatError(f"{path}: cannot read the video stream ({e})") from e
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else DEFAULT_FPS
        pix = cc.format.name if cc.format is not None else None
        info = dict(
            width=int(cc.width),
            height=int(cc.height),
            fps=fps,
            codec=cc.name,
            pix_fmt=pix,
            color_range={1: "tv", 2: "pc"}.get(int(cc.color_range)),
            colorspace=int(cc.colorspace),
            num_frames=len(pts),
        )
        have_pts = all(p is not None for p in pts) and len(set(pts)) == len(pts)
        return info, (sorted(pts) if have_pts else None), sorted(keys)
    finally:
        container.close()


def probe(path) -> dict:
    """dict(width, height, fps, codec, pix_fmt, color_range ('tv'/'pc'/None), colorspace (libav value),
    num_frames) of the first video stream."""
    return _scan(Path(path))[0]


def _planes(frame, path: Path) -> YUVFrame:
    """A decoded frame -> 8-bit 4:2:0 planes (other layouts through libswscale, same range and matrix)."""
    if frame.format.name not in _420:
        try:
            frame = frame.reformat(format="yuv420p")
        except av.FFmpegError as e:
            raise VideoFormatError(f"{path}: cannot convert {frame.format.name} frames to 4:2:0 ({e})") from e
    out = []
    for i, plane in enumerate(frame.planes):
        w, h = (frame.width, frame.height) if i == 0 else (frame.width // 2, frame.height // 2)
        a = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        out.append(np.ascontiguousarray(a[:h, :w]))
    return YUVFrame(*out)


class AVReader(VideoReader):
    """Any container/codec libav decodes (.mp4, .mkv, ...), as 8-bit 4:2:0; colour from the stream's tags
    (:mod:`gvc.data.io.colour`). Non-4:2:0 sources are converted by libswscale.

    Attributes besides VideoReader's: ``meta`` (the :func:`probe` dict), ``color_range`` ('tv'/'pc'/None).
    """

    #: seek (instead of decoding through) when the next wanted frame is this far ahead
    max_skip = 64

    def __init__(self, path, **color):
        super().__init__(**color)
        self.path = Path(path)
        self.meta, self._pts, self._keys = _scan(self.path)
        m = self.meta
        self.width, self.height, self.fps = m["width"], m["height"], float(m["fps"])
        self.color_range = m["color_range"]
        check_even(self.path, self.width, self.height)
        stated_range = {"tv": 1, "pc": 2}.get(m["color_range"], 0)
        # a matrix named by the caller wins, even over one gvc could not convert
        space = m["colorspace"] if self._requested.matrix is None else 2
        self._set_colour(colour_from_av(self.path, m["codec"], m["pix_fmt"], stated_range, space))
        self.num_frames = m["num_frames"]
        if self.num_frames == 0:
            raise VideoFormatError(f"{self.path}: the video stream has zero frames")
        if m["pix_fmt"] not in _420:
            self.conversion = f"{m['pix_fmt']} video, converted to 8-bit 4:2:0 (yuv420p) by libswscale"
        self._index_of = {p: i for i, p in enumerate(self._pts)} if self._pts is not None else None
        self._container = None
        self._stream = None
        self._frames = None  # iterator of decoded frames
        self._pending = None  # a decoded frame not returned yet (the one a seek stopped at)
        self._next = 0  # index of the frame the decoder yields next

    # --- decoding --------------------------------------------------------------------------------------------------
    def _restart(self) -> None:
        self.close()
        self._container = _open(self.path)
        stream = _video_stream(self._container, self.path)
        self._stream = stream
        self._frames = self._container.decode(stream)
        self._next = 0

    def _decoded(self):
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except av.FFmpegError as e:
            idx = self._next
            self.close()
            raise VideoFormatError(
                f"{self.path}: decoding failed at frame {idx} of {self.num_frames} ({e})"
            ) from e

    def _pull(self) -> YUVFrame:
        frame = self._decoded()
        if frame is None:
            idx = self._next
            self.close()
            raise VideoFormatError(
                f"{self.path}: the decoder stopped before frame {idx} of {self.num_frames} "
                "(file truncated or not decodable)"
            )
        self._next += 1
        return _planes(frame, self.path)

    def _seek(self, index: int) -> None:
        """Position the decoder so that the next frame pulled is ``index``."""
        if self._index_of is not None and self._keys and self._seek_by_timestamp(index):
            return
        self._index_of = None  # timestamps cannot be trusted for this file: count frames from the start
        self._restart()
        while self._next < index and self._decoded() is not None:
            self._next += 1

    def _seek_by_timestamp(self, index: int) -> bool:
        """Seek to the keyframe at or before frame ``index`` and decode up to it; False if the decoded
        timestamps do not identify the frames (the caller then decodes from the start)."""
        target = self._pts[index]
        k = bisect.bisect_right(self._keys, target) - 1
        self._restart()
        if k >= 0 and self._keys[k] > self._pts[0]:
            try:
                self._container.seek(self._keys[k], stream=self._stream, backward=True, any_frame=False)
            except av.FFmpegError:
                return False
            self._frames = self._container.decode(self._stream)
        while (frame := self._decoded()) is not None:
            i = self._index_of.get(frame.pts)
            if i is None or i > index:  # unknown timestamp, or the seek went past the frame
                return False
            if i == index:
                self._pending, self._next = frame, index
                return True
        return False

    def _read_yuv(self, index: int) -> YUVFrame:
        if self._frames is None or index < self._next or index - self._next > self.max_skip:
            self._pending = None
            self._seek(index)
        while self._next < index:
            self._pull()
        pending, self._pending = self._pending, None
        if pending is not None:
            self._next += 1
            return _planes(pending, self.path)
        return self._pull()

    def close(self) -> None:
        self._frames = None
        self._pending = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __del__(self):
        if getattr(self, "_container", None) is not None:
            self._container.close()


class AVWriter(VideoWriter):
    """Encodes with libav (libx264 at ``crf`` 0 = lossless by default, ``preset``); the stream is tagged with
    ``matrix`` and ``full_range`` (no pixel conversion)."""

    def __init__(
        self,
        path,
        fps: float = DEFAULT_FPS,
        crf: int = 0,
        codec: str = "libx264",
        preset: str = "medium",
        **kw,
    ):
        super().__init__(path, fps, **kw)
        self.crf, self.codec, self.preset = crf, codec, preset
        self._container = None

    def _open(self, tmp: Path) -> None:
        _require_av(self.path)
        try:
            self._container = av.open(str(tmp), mode="w", format=_format_for(self.path))
            rate = Fraction(self.fps).limit_denominator(1001)
            s = self._container.add_stream(self.codec, rate=rate)
        except (av.FFmpegError, ValueError) as e:
            self._discard()
            raise VideoFormatError(f"{self.path}: cannot write {self.codec} into this file ({e})") from e
        s.width, s.height, s.pix_fmt = self.width, self.height, "yuv420p"
        s.options = {"crf": str(self.crf), "preset": self.preset}
        cc = s.codec_context
        cc.color_range = AV_COLOR_RANGE[self.full_range]
        cc.colorspace = AV_COLORSPACE[matrix_name(self.matrix)]
        self._stream = s

    def _write(self, f: YUVFrame) -> None:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, data in zip(frame.planes, f):
            h, w = data.shape
            view = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
            view[:h, :w] = data
        frame.pts = self.frames_written
        frame.color_range = AV_COLOR_RANGE[self.full_range]
        frame.colorspace = AV_COLORSPACE[matrix_name(self.matrix)]
        try:
            self._container.mux(self._stream.encode(frame))
        except av.FFmpegError as e:
            raise VideoFormatError(f"{self.path}: encoder failed ({e})") from e

    def _finish(self) -> None:
        c, self._container = self._container, None
        if c is None:
            return
        try:
            c.mux(self._stream.encode(None))
        except av.FFmpegError as e:
            raise VideoFormatError(f"{self.path}: encoder failed at the end ({e})") from e
        finally:
            c.close()

    def _discard(self) -> None:
        c, self._container = self._container, None
        if c is not None:
            try:
                c.close()
            except av.FFmpegError:
                pass


def _format_for(path: Path) -> str | None:
    """libav muxer for an output name (the temporary name keeps the suffix; raw .264/.265 need naming)."""
    return {".264": "h264", ".265": "hevc", ".m4v": "mp4"}.get(path.suffix.lower())
