"""Standard codecs through the ffmpeg binary (imageio-ffmpeg 0.8.1: ffmpeg 9.0.2), low delay, same GOP as gvc.

Each codec encodes the source's raw I420 copy to an elementary-stream file (raw .hevc / .266, or .ivf for AV1)
at a quality value ``q``; PyAV reads the file back: its packets give each frame's own bits, its decoder the
frames and their picture types. 10-bit output (libvvenc only encodes 10 bit; ffmpeg widens the 8-bit source
exactly, x << 2) is rounded back to 8 bit with ``(x + 2) >> 2``.

Defaults: the ``baselines`` of conf/evaluate.yaml, their one source (``gvc.eval.defaults.default_codecs``; read
``ffmpeg -h encoder=NAME`` for the options):

- ``x265``: HEVC ``-preset medium -tune zerolatency -x265-params crf=Q:keyint=GOP:scenecut=0:
  bframes=0:info=0`` (``info=0``: no version/settings SEI, ~2 kB per stream; ``scenecut=0``: intra frames only where
  the GOP puts them, as for gvc). CRF is fractional (0.01 steps).
- ``x265_veryslow``: the same at ``-preset veryslow`` (the stronger setting).
- ``vvc``: libvvenc (VVenC 1.15) ``-preset medium -b:v RATE -vvenc-params PicReordering=0:DecodingRefreshType=none:
  GOPSize=8:IntraPeriod=GOP``, two passes: low delay (no picture reordering; vvenc accepts only refresh type
  ``none`` then, and its low-delay GOP needs GOPSize 8) under VVenC's own rate control (its QP is an integer,
  too coarse to land within 5% of a target on short clips).
- ``svtav1``: SVT-AV1 ``-preset 8 -g GOP -svtav1-params pred-struct=1:crf=Q`` (pred-struct 1 = low delay); CRF in
  quarter steps up to 70.
- ``aom_av1``: libaom ``-usage realtime -cpu-used 8 -crf Q -b:v 0 -g GOP -lag-in-frames 0`` (real-time mode, no
  look-ahead). Integer CRF.

GOP: the I-frame period of the run (<= 0: one I-frame, i.e. a key-frame interval longer than the clip).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gvc.data.io import YUVFrame
from gvc.errors import ConfigError, VideoFormatError
from gvc.eval.codecs.base import EncodedFile, FrameRecord, check_q_range
from gvc.eval.defaults import default_codecs
from gvc.eval.tools import ffmpeg_exe, ffmpeg_has

_PICT_TYPES = {1: "I", 2: "P", 3: "B", 4: "S", 5: "SI", 6: "SP", 7: "BI"}


def keyint(gop: int, frames: int) -> int:
    """Key-frame interval for an encoder: ``gop``, or longer than the clip when ``gop <= 0`` (first frame only)."""
    return int(gop) if gop > 0 else int(frames) + 1


def format_q(q: float, step: float) -> str:
    """q rounded to the codec's step, without trailing zeros (27 -> "27", 27.25 -> "27.25")."""
    value = round(round(float(q) / step) * step, 6)
    return str(int(value)) if value == int(value) else f"{value:g}"


def _planes(frame) -> YUVFrame:
    """A PyAV video frame -> 8-bit I420 planes (10-bit rounded to 8 with (x + 2) >> 2)."""
    name = frame.format.name
    if name in ("yuv420p", "yuvj420p"):
        dtype, shift = np.uint8, 0
    elif name == "yuv420p10le":
        dtype, shift = np.dtype("<u2"), 2
    else:
        frame = frame.reformat(format="yuv420p")
        dtype, shift = np.uint8, 0
    out = []
    for i, plane in enumerate(frame.planes):
        w, h = (frame.width, frame.height) if i == 0 else (frame.width // 2, frame.height // 2)
        item = np.dtype(dtype).itemsize
        arr = np.frombuffer(plane, dtype=dtype).reshape(-1, plane.line_size // item)[:h, :w]
        if shift:
            arr = np.clip((arr.astype(np.int32) + (1 << (shift - 1))) >> shift, 0, 255)
        out.append(np.ascontiguousarray(arr, dtype=np.uint8))
    return YUVFrame(*out)


def read_bitstream(path: str | Path, fmt: str | None = None) -> tuple[list[YUVFrame], list[FrameRecord]]:
    """Decode a video bitstream file with PyAV -> (frames as I420 planes, per-frame records in display order).

    Each record's bits are its packet's size (elementary stream: parameter sets go with the first packet; the
    container's own headers, e.g. IVF's 32 + 12 bytes per frame, are in the file size only). Packets are matched
    to frames by timestamp where the container has them, else in order (low delay: decode order = display order).
    """
    import av

    try:
        container = av.open(str(path), format=fmt)
    except (av.error.FFmpegError, OSError) as err:
        raise VideoFormatError(f"cannot open {path} ({fmt or 'probed'}): {err}") from err
    frames: list[YUVFrame] = []
    types: list[str] = []
    frame_pts: list[int | None] = []
    packets: list[tuple[int | None, int]] = []
    with container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if packet.size:
                    packets.append((packet.pts, int(packet.size)))
                for frame in packet.decode():
                    frames.append(_planes(frame))
                    types.append(_PICT_TYPES.get(int(frame.pict_type), str(frame.pict_type)))
                    frame_pts.append(frame.pts)
        except av.error.FFmpegError as err:
            raise VideoFormatError(f"decoding {path} failed: {err}") from err
    if len(packets) != len(frames):
        raise VideoFormatError(f"{path}: {len(packets)} packets but {len(frames)} decoded frames")
    if all(p is not None for p, _ in packets) and all(p is not None for p in frame_pts):
        by_pts = dict(packets)
        sizes = [by_pts.get(p) for p in frame_pts]
        if any(s is None for s in sizes):
            sizes = [s for _, s in packets]
    else:
        sizes = [s for _, s in packets]
    records = [FrameRecord(i, t, 8 * int(s)) for i, (t, s) in enumerate(zip(types, sizes))]
    return frames, records


class _BitstreamReading:
    """decode / frame_records from one PyAV pass over the file (kept for the last file read)."""

    format: str | None = None
    _last: tuple[tuple[str, int, int], tuple[list[YUVFrame], list[FrameRecord]]] | None = None

    def _read(self, path: Path) -> tuple[list[YUVFrame], list[FrameRecord]]:
        st = Path(path).stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if self._last is None or self._last[0] != key:
            self._last = (key, read_bitstream(path, self.format))
        return self._last[1]

    def decode(self, path: Path, video) -> list[YUVFrame]:
        frames = self._read(path)[0]
        if frames and frames[0].y.shape != (video.height, video.width):
            raise VideoFormatError(
                f"{path}: decoded {frames[0].y.shape[1]}x{frames[0].y.shape[0]}, source {video.width}x{video.height}"
            )
        return frames

    def frame_records(self, path: Path, video) -> list[FrameRecord]:
        return self._read(path)[1]


class FFmpegCodec(_BitstreamReading):
    """A standard encoder run by ffmpeg on the raw I420 source, at quality ``q`` (see module docstring).

    ``args``: encoder arguments with ``{q}``, ``{gop}`` (the key-frame interval) and ``{preset}`` placeholders;
    ``q_range``: the quality parameter's valid range (higher = lower rate); ``q_step``: its resolution (1 for
    integer QP/CRF); ``format``: ffmpeg muxer of the output (and demuxer when reading it back); ``ext``: file
    extension; ``threads``: ``-threads`` (0 = encoder default).

    ``mode="bitrate"``: the setting is the rate *asked of the encoder's own rate control*, in bpp (``{bitrate}``
    in ``args`` becomes bits/s = bpp x W x H x fps; ``q_range`` / ``q_step`` are then in bpp and rate rises with
    the setting); ``passes=2`` runs ffmpeg twice (``-pass 1`` to a null output, then ``-pass 2``) with a stats
    file next to the output, and the recorded command is both runs joined by ``&&``.
    """

    def __init__(
        self,
        name: str,
        encoder: str,
        args: Sequence[str] = (),
        preset: str = "",
        q_range: Sequence[float] = (0, 51),
        q_step: float = 1,
        format: str | None = None,
        ext: str = "bin",
        gop: int = -1,
        ffmpeg: str | None = None,
        threads: int = 0,
        mode: str = "q",
        passes: int = 1,
    ):
        if not encoder:
            raise ConfigError(f"codec {name}: give an ffmpeg `encoder`")
        self.name = name
        self.encoder = str(encoder)
        self.args = [str(a) for a in args]
        self.preset = str(preset)
        self.q_range, self.q_step = check_q_range(name, q_range, q_step)
        if isinstance(args, str) or not all(isinstance(a, str | int | float) for a in args):
            raise ConfigError(f"codec {name}: args must be a list of strings, got {args!r}")
        self.format = format
        self.ext = str(ext)
        self.gop = int(gop)
        self.exe = ffmpeg or ffmpeg_exe()
        self.threads = int(threads)
        if mode not in ("q", "bitrate"):
            raise ConfigError(f"codec {name}: mode must be q or bitrate, got {mode!r}")
        self.mode = mode
        if passes not in (1, 2):
            raise ConfigError(f"codec {name}: passes must be 1 or 2, got {passes!r}")
        self.passes = int(passes)
        if mode == "bitrate" and not any("{bitrate}" in a for a in self.args):
            raise ConfigError(f"codec {name}: mode bitrate needs {{bitrate}} in args: {self.args}")

    def settings(self) -> dict[str, Any]:
        return {
            "kind": "ffmpeg",
            "mode": self.mode,
            "passes": self.passes,
            "encoder": self.encoder,
            "args": self.args,
            "preset": self.preset,
            "gop": self.gop,
            "q_range": list(self.q_range),
            "q_step": self.q_step,
            "format": self.format,
            "threads": self.threads,
        }

    def unavailable_reason(self) -> str | None:
        if not ffmpeg_has("encoders", self.encoder, self.exe):
            return f"the ffmpeg at {self.exe} has no {self.encoder} encoder (imageio-ffmpeg >= 0.8.1 has it)"
        return None

    def format_q(self, q: float) -> str:
        return format_q(q, self.q_step)

    def bitrate(self, video, q: float) -> int:
        """bits/s asked of the encoder's rate control for a setting of ``q`` bpp (``mode="bitrate"``)."""
        return max(1, round(float(self.format_q(q)) * video.width * video.height * video.fps))

    def command(self, video, q: float, out: Path, pass_: int = 0) -> list[str]:
        """The exact ffmpeg command line that encodes ``video`` at ``q`` into ``out`` (``pass_`` 1 or 2 of a
        two-pass encode: the stats file is ``out`` + ``.pass``; pass 1 writes no bitstream)."""
        values = {"q": self.format_q(q), "gop": keyint(self.gop, video.count), "preset": self.preset}
        if self.mode == "bitrate":
            values["bitrate"] = str(self.bitrate(video, q))
        cmd = [self.exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt",
               "yuv420p", "-s", f"{video.width}x{video.height}", "-r", f"{video.fps:g}", "-i", str(video.raw),
               "-frames:v", str(video.count), "-c:v", self.encoder]  # fmt: skip
        try:
            cmd += [a.format(**values) for a in self.args]
        except (KeyError, IndexError) as err:
            raise ConfigError(f"codec {self.name}: unknown placeholder {err} in args {self.args}") from err
        if self.threads:
            cmd += ["-threads", str(self.threads)]
        if pass_:
            cmd += ["-pass", str(pass_), "-passlogfile", f"{out}.pass"]
        if pass_ == 1:
            return cmd + ["-f", "null", "-"]
        if self.format:
            cmd += ["-f", self.format]
        return cmd + [str(out)]

    def encode(self, video, setting: float, out: Path) -> EncodedFile:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if self.passes == 2:
            cmds = [self.command(video, float(setting), out, 1), self.command(video, float(setting), out, 2)]
        else:
            cmds = [self.command(video, float(setting), out)]
        t0 = time.perf_counter()
        try:
            for cmd in cmds:
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    break
        finally:
            for stats in out.parent.glob(f"{out.name}.pass*"):  # the stats files of a two-pass encode
                stats.unlink()
        seconds = time.perf_counter() - t0
        command = " && ".join(shlex.join(c) for c in cmds)
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            raise VideoFormatError(f"{self.name} encode failed ({command}): {proc.stderr.strip()[-800:]}")
        size = out.stat().st_size
        extra = {"requested_bits_per_s": self.bitrate(video, setting)} if self.mode == "bitrate" else {}
        return EncodedFile(out, size, 8.0 * size / video.pixels, float(setting), command, seconds, extra)


def build_ffmpeg_codec(
    name: str, spec: Mapping[str, Any] | None, gop: int, ffmpeg: str | None = None
) -> FFmpegCodec:
    """An FFmpegCodec from a config spec; an empty spec takes the default of that name (conf/evaluate.yaml
    ``baselines``, `default_codecs`); keys given in ``spec`` override the default of the same name (so
    ``{preset: slow}`` changes only the preset)."""
    defaults = default_codecs()
    base = dict(defaults.get(name, {}))
    base.update({k: v for k, v in dict(spec or {}).items() if v is not None})
    if not base:
        raise ConfigError(f"unknown codec {name!r}: give its `encoder` and `args`; known: {list(defaults)}")
    known = {"encoder", "args", "preset", "q_range", "q_step", "format", "ext", "threads", "mode", "passes"}
    unknown = set(base) - known
    if unknown:
        raise ConfigError(f"codec {name}: unknown keys {sorted(unknown)}")
    return FFmpegCodec(name, gop=gop, ffmpeg=ffmpeg, **base)
