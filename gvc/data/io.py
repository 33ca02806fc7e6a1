"""Video readers and writers: raw YUV 4:2:0, Y4M, anything ffmpeg decodes, folders of PNG frames.

Frames come as :class:`YUVFrame` (uint8 numpy planes Y (H, W), U, V (H/2, W/2)) or as RGB float tensors
(3, H, W) in [0, 1] converted with the reader's colour settings (default BT.709 full range, see
:mod:`gvc.data.color`). Every bad input raises :class:`gvc.errors.VideoFormatError` naming the file and the fix.

ffmpeg is the binary shipped by imageio-ffmpeg; decoding runs in a subprocess whose stdout is a yuv420p pipe. The
subprocess is killed when the reader is closed, leaves a ``with`` block, or is garbage collected.
"""

from __future__ import annotations

import os
import re
import subprocess
import weakref
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch

from gvc.data.color import rgb_to_yuv420, yuv420_to_rgb
from gvc.errors import VideoFormatError

RAW_EXTENSIONS = (".yuv",)
Y4M_EXTENSIONS = (".y4m",)
FFMPEG_EXTENSIONS = (
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
VIDEO_EXTENSIONS = RAW_EXTENSIONS + Y4M_EXTENSIONS + FFMPEG_EXTENSIONS
PNG_EXTENSIONS = (".png",)
DEFAULT_FPS = 30.0
Y4M_420_TAGS = ("420", "420jpeg", "420paldv", "420mpeg2")


class YUVFrame(NamedTuple):
    """One 8-bit 4:2:0 frame: y (H, W), u and v (H/2, W/2), numpy uint8."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's ffmpeg binary."""
    try:
        import imageio_ffmpeg
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise VideoFormatError("imageio-ffmpeg is not installed: pip install imageio-ffmpeg") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def _check_even(path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise VideoFormatError(f"{path}: frame size {width}x{height} is not positive")
    if width % 2 or height % 2:
        raise VideoFormatError(
            f"{path}: size {width}x{height} is odd; 4:2:0 needs even width and height "
            f"(crop it, e.g. ffmpeg -i in -vf crop={width // 2 * 2}:{height // 2 * 2}:0:0 out.y4m)"
        )


def _frame_bytes(width: int, height: int) -> int:
    return width * height * 3 // 2


def _split_planes(buf, width: int, height: int) -> YUVFrame:
    a = np.frombuffer(buf, dtype=np.uint8)
    n = width * height
    c = n // 4
    return YUVFrame(
        a[:n].reshape(height, width),
        a[n : n + c].reshape(height // 2, width // 2),
        a[n + c : n + 2 * c].reshape(height // 2, width // 2),
    )


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


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoFormatError(f"{path}: no such file (check the path)")
    if not path.is_file():
        raise VideoFormatError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise VideoFormatError(f"{path}: file is not readable (check its permissions)")


class VideoReader:
    """Random-access and streaming reader of 8-bit 4:2:0 video.

    Attributes: ``path``, ``width``, ``height``, ``fps`` (float), ``len(reader)`` = number of frames.
    ``matrix``/``full_range``/``chroma_upsample`` set the YUV -> RGB conversion of :meth:`read_rgb`/:meth:`read_clip`.
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int

    def __init__(self, matrix: str = "bt709", full_range: bool = True, chroma_upsample: str = "nearest"):
        self.matrix = matrix
        self.full_range = full_range
        self.chroma_upsample = chroma_upsample

    # --- to implement -------------------------------------------------------------------------------------------
    def _read_yuv(self, index: int) -> YUVFrame:
        raise NotImplementedError

    def _iter_yuv(self, start: int, stop: int) -> Iterator[YUVFrame]:
        for i in range(start, stop):
            yield self._read_yuv(i)

    def close(self) -> None:
        """Release files/subprocesses; the reader may be reopened lazily by a later read."""

    # --- public ----------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_frames

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

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

    def read_yuv_clip(self, start: int, length: int) -> YUVFrame:
        """Frames [start, start+length) stacked: y (T, H, W), u, v (T, H/2, W/2) uint8."""
        if length <= 0 or start < 0 or start + length > self.num_frames:
            raise IndexError(
                f"{self.path}: clip [{start}, {start + length}) outside {self.num_frames} frames"
            )
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


class RawYUVReader(VideoReader):
    """Raw planar 8-bit YUV 4:2:0 (I420) file; frames are read by seeking, never the whole file.

    ``width``/``height``/``fps`` default to what the file name says (:func:`parse_yuv_name`); fps falls back to
    ``default_fps`` (30).
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
        _check_file(self.path)
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
        _check_even(self.path, self.width, self.height)
        self.fps = float(fps or nfps or default_fps)
        self.frame_bytes = _frame_bytes(self.width, self.height)
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

    def _file(self):
        if self._fh is None:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        return self._fh

    def _read_yuv(self, index: int) -> YUVFrame:
        fh = self._file()
        fh.seek(index * self.frame_bytes)
        buf = fh.read(self.frame_bytes)
        if len(buf) != self.frame_bytes:
            raise VideoFormatError(f"{self.path}: frame {index} is truncated (file changed while reading?)")
        return _split_planes(buf, self.width, self.height)

    def _iter_yuv(self, start: int, stop: int) -> Iterator[YUVFrame]:
        with open(self.path, "rb") as fh:
            fh.seek(start * self.frame_bytes)
            for i in range(start, stop):
                buf = fh.read(self.frame_bytes)
                if len(buf) != self.frame_bytes:
                    raise VideoFormatError(f"{self.path}: frame {i} is truncated")
                yield _split_planes(buf, self.width, self.height)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Y4MReader(VideoReader):
    """YUV4MPEG2 reader. The header is parsed (W, H, F, C, XCOLORRANGE); only 8-bit 4:2:0 (C420, C420jpeg,
    C420paldv, C420mpeg2 or no C tag) is accepted. Frame offsets are indexed once (FRAME lines may carry
    parameters), so any frame is read by seeking."""

    def __init__(self, path, **color):
        super().__init__(**color)
        self.path = Path(path)
        _check_file(self.path)
        with open(self.path, "rb") as fh:
            head = fh.read(4096)
        nl = head.find(b"\n")
        if not head.startswith(b"YUV4MPEG2") or nl < 0:
            raise VideoFormatError(
                f"{self.path}: not a Y4M file (header must start with 'YUV4MPEG2 ' and end with a newline)"
            )
        tokens = head[:nl].decode("ascii", errors="replace").split()[1:]
        params: dict[str, str] = {}
        for t in tokens:
            params.setdefault(t[0], t[1:])
            if t.startswith("XCOLORRANGE="):
                params["XCOLORRANGE"] = t.split("=", 1)[1]
        try:
            self.width, self.height = int(params["W"]), int(params["H"])
        except (KeyError, ValueError) as e:
            raise VideoFormatError(
                f"{self.path}: bad Y4M header {head[:nl]!r}: W and H are required integers"
            ) from e
        fps = DEFAULT_FPS
        if "F" in params:
            try:
                num, den = (int(x) for x in params["F"].split(":"))
                fps = num / den
            except (ValueError, ZeroDivisionError) as e:
                raise VideoFormatError(
                    f"{self.path}: bad Y4M frame rate 'F{params['F']}' (want Fnum:den)"
                ) from e
        self.fps = fps
        chroma = params.get("C", "420jpeg")
        if chroma not in Y4M_420_TAGS:
            raise VideoFormatError(
                f"{self.path}: Y4M colour space C{chroma} is not supported; only 8-bit 4:2:0 "
                f"(C420jpeg/C420/C420paldv/C420mpeg2). Convert: ffmpeg -i {self.path.name} -pix_fmt yuv420p out.y4m"
            )
        if params.get("I", "p") not in ("p", "?"):
            pass  # interlaced flags are carried but frames are still read as progressive pictures
        self.color_range = params.get("XCOLORRANGE")
        _check_even(self.path, self.width, self.height)
        self.frame_bytes = _frame_bytes(self.width, self.height)
        self._offsets = self._index_frames(nl + 1)
        self.num_frames = len(self._offsets)
        if self.num_frames == 0:
            raise VideoFormatError(f"{self.path}: Y4M file has a header but zero frames")
        self._fh = None

    def _index_frames(self, pos: int) -> list[int]:
        offsets = []
        size = self.path.stat().st_size
        with open(self.path, "rb") as fh:
            while pos < size:
                fh.seek(pos)
                line = fh.read(256)
                nl = line.find(b"\n")
                if not line.startswith(b"FRAME") or nl < 0:
                    raise VideoFormatError(
                        f"{self.path}: bad Y4M frame header at byte {pos} (frame {len(offsets)}): expected 'FRAME'"
                    )
                data = pos + nl + 1
                if data + self.frame_bytes > size:
                    raise VideoFormatError(
                        f"{self.path}: frame {len(offsets)} is truncated ({size - data} of {self.frame_bytes} bytes); "
                        "the file is cut short"
                    )
                offsets.append(data)
                pos = data + self.frame_bytes
        return offsets

    def _read_yuv(self, index: int) -> YUVFrame:
        if self._fh is None:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        self._fh.seek(self._offsets[index])
        return _split_planes(self._fh.read(self.frame_bytes), self.width, self.height)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _kill_process(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


_VIDEO_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Video: (.*)")
_DIM_RE = re.compile(r"(?<![0-9])(\d{1,5})x(\d{1,5})(?![0-9])")
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)")


def probe(path) -> dict:
    """Probe a container with ``ffmpeg -i``: dict(width, height, fps, codec, pix_fmt, color_range, num_frames).

    ``num_frames`` counts the packets of the first video stream (``-c copy -f framecrc``, no decode).
    """
    path = Path(path)
    _check_file(path)
    exe = ffmpeg_exe()
    res = subprocess.run(
        [exe, "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    err = res.stderr
    m = _VIDEO_STREAM_RE.search(err)
    if m is None:
        last = err.strip().splitlines()[-1] if err.strip() else "no output"
        raise VideoFormatError(f"{path}: ffmpeg cannot decode a video stream from this file ({last})")
    desc = m.group(1)
    dim = _DIM_RE.search(desc)
    if dim is None:
        raise VideoFormatError(f"{path}: ffmpeg reports no frame size for the video stream ({desc})")
    fps = None
    for value, kilo, _ in _FPS_RE.findall(desc):
        fps = float(value) * (1000 if kilo else 1)
        break
    pix = re.search(r",\s*([a-z][a-z0-9_]*)(?:\(([^)]*)\))?\s*,", desc)
    extra = [t.strip() for t in (pix.group(2) or "").split(",")] if pix else []
    color_range = (
        "tv"
        if "tv" in extra
        else "pc"
        if "pc" in extra or (pix and pix.group(1).startswith("yuvj"))
        else None
    )
    cnt = subprocess.run(
        [
            exe,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-c",
            "copy",
        ]
        + ["-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=600,
    )
    if cnt.returncode != 0:
        raise VideoFormatError(f"{path}: ffmpeg cannot read the video stream ({cnt.stderr.strip()[-300:]})")
    num_frames = sum(1 for line in cnt.stdout.splitlines() if line and not line.startswith("#"))
    return dict(
        width=int(dim.group(1)),
        height=int(dim.group(2)),
        fps=fps or DEFAULT_FPS,
        codec=desc.split()[0].rstrip(","),
        pix_fmt=pix.group(1) if pix else None,
        color_range=color_range,
        num_frames=num_frames,
    )


class FFmpegReader(VideoReader):
    """Any container/codec ffmpeg decodes (.mp4, .mkv, ...), decoded to yuv420p through a subprocess pipe.

    Sequential reads stream from one ffmpeg process; a read that goes backwards (or far forwards) restarts ffmpeg
    with ``select=gte(n,START)``, which decodes from the start but only converts/pipes the wanted frames (frame
    exact, slow for long videos: use ``gvc prepare-clips`` shards for training). Non-4:2:0 sources are converted
    by ffmpeg's own scaler. The process is killed on close(), on leaving ``with`` and on garbage collection.
    """

    #: restart ffmpeg (instead of reading through) when the next wanted frame is this far ahead
    max_skip = 64

    def __init__(self, path, **color):
        super().__init__(**color)
        self.path = Path(path)
        meta = probe(self.path)
        self.meta = meta
        self.width, self.height, self.fps = meta["width"], meta["height"], float(meta["fps"])
        self.color_range = meta["color_range"]
        _check_even(self.path, self.width, self.height)
        self.num_frames = meta["num_frames"]
        if self.num_frames == 0:
            raise VideoFormatError(f"{self.path}: the video stream has zero frames")
        self.frame_bytes = _frame_bytes(self.width, self.height)
        self._proc: subprocess.Popen | None = None
        self._next = 0  # index of the frame the pipe yields next
        self._finalizer = None

    def _start(self, start: int) -> None:
        self.close()
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(self.path),
            "-map",
            "0:v:0",
        ]
        if start > 0:
            cmd += ["-vf", f"select=gte(n\\,{start})"]
        # same 4:2:0 layout out as in: no range conversion by ffmpeg's scaler (yuvj420p = full-range tag)
        pix = self.meta.get("pix_fmt") if self.meta.get("pix_fmt") in ("yuv420p", "yuvj420p") else "yuv420p"
        cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix, "-"]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=self.frame_bytes,
        )
        self._finalizer = weakref.finalize(self, _kill_process, self._proc)
        self._next = start

    def _read_from_pipe(self) -> YUVFrame:
        assert self._proc is not None and self._proc.stdout is not None
        buf = bytearray(self.frame_bytes)
        view = memoryview(buf)
        got = 0
        while got < self.frame_bytes:
            n = self._proc.stdout.readinto(view[got:])
            if not n:
                break
            got += n
        if got != self.frame_bytes:
            self._proc.wait(timeout=30)
            err = self._proc.stderr.read().decode(errors="replace").strip() if self._proc.stderr else ""
            idx = self._next
            self.close()
            raise VideoFormatError(
                f"{self.path}: ffmpeg stopped before frame {idx} of {self.num_frames}"
                + (f": {err.splitlines()[-1]}" if err else " (file truncated or not decodable)")
            )
        self._next += 1
        return _split_planes(buf, self.width, self.height)

    def _read_yuv(self, index: int) -> YUVFrame:
        if self._proc is None or index < self._next or index - self._next > self.max_skip:
            self._start(index)
        while self._next < index:
            self._read_from_pipe()
        return self._read_from_pipe()

    def _iter_yuv(self, start: int, stop: int) -> Iterator[YUVFrame]:
        for i in range(start, stop):
            yield self._read_yuv(i)

    def read_yuv_clip(self, start: int, length: int) -> YUVFrame:
        """Frames [start, start+length) from the running pipe (read-through or restart as in :meth:`read_yuv`)."""
        if length <= 0 or start < 0 or start + length > self.num_frames:
            raise IndexError(
                f"{self.path}: clip [{start}, {start + length}) outside {self.num_frames} frames"
            )
        frames = [self._read_yuv(start)] + [self._read_from_pipe() for _ in range(length - 1)]
        return YUVFrame(*(np.stack(p) for p in zip(*frames)))

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # kills the process once
            self._finalizer = None
        self._proc = None


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


class PNGDirReader(VideoReader):
    """A folder of PNG frames (sorted naturally by name: frame_2 before frame_10), 8- or 16-bit RGB/gray.

    :meth:`read_rgb` gives the PNG pixels exactly; :meth:`read_yuv` converts them to 4:2:0 with the colour settings.
    """

    def __init__(self, path, fps: float | None = None, **color):
        super().__init__(**color)
        self.path = Path(path)
        if not self.path.is_dir():
            raise VideoFormatError(f"{self.path}: not a folder of PNG frames")
        self.files = sorted(
            (p for p in self.path.iterdir() if p.suffix.lower() in PNG_EXTENSIONS), key=_natural_key
        )
        if not self.files:
            raise VideoFormatError(f"{self.path}: folder has no .png frames (zero frames)")
        self.fps = float(fps or DEFAULT_FPS)
        first = self._load(0)
        self.height, self.width = first.shape[-2:]
        _check_even(self.path, self.width, self.height)
        self.num_frames = len(self.files)

    def _load(self, index: int) -> torch.Tensor:
        f = self.files[index]
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise VideoFormatError(f"{f}: cv2 cannot read this PNG (corrupt or not a PNG)")
        scale = 65535.0 if img.dtype == np.uint16 else 255.0
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(scale)
        if hasattr(self, "width") and t.shape[-2:] != (self.height, self.width):
            raise VideoFormatError(
                f"{f}: frame is {t.shape[-1]}x{t.shape[-2]} but the first frame is {self.width}x{self.height}"
            )
        return t

    def read_rgb(self, index: int) -> torch.Tensor:
        return self._load(self._index(index))

    def read_clip(self, start: int, length: int) -> torch.Tensor:
        if length <= 0 or start < 0 or start + length > self.num_frames:
            raise IndexError(
                f"{self.path}: clip [{start}, {start + length}) outside {self.num_frames} frames"
            )
        return torch.stack([self._load(i) for i in range(start, start + length)])

    def _read_yuv(self, index: int) -> YUVFrame:
        y, u, v = rgb_to_yuv420(self._load(index), self.matrix, self.full_range)
        return YUVFrame(y.numpy(), u.numpy(), v.numpy())


def open_video(path, width: int | None = None, height: int | None = None, fps: float | None = None, **color):
    """Open a video by kind: folder -> PNG frames, .yuv -> raw 4:2:0, .y4m -> Y4M, anything else -> ffmpeg.

    ``width``/``height`` only apply to raw .yuv; ``fps`` to raw .yuv and PNG folders. ``color`` = matrix,
    full_range, chroma_upsample (see :class:`VideoReader`).
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
    return FFmpegReader(p, **color)


# ---------------------------------------------------------------------------------------------------------------
# writers


def _as_yuv(frame, matrix: str, full_range: bool) -> YUVFrame:
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


def _flatten(frames) -> Iterator:
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

    RGB is converted with ``matrix``/``full_range`` (2x2 chroma averaging). The size is fixed by the first frame.
    """

    def __init__(self, path, fps: float = DEFAULT_FPS, matrix: str = "bt709", full_range: bool = True):
        self.path = Path(path)
        self.fps = float(fps)
        self.matrix, self.full_range = matrix, full_range
        self.width = self.height = None
        self.frames_written = 0

    def _open(self) -> None:
        raise NotImplementedError

    def _write(self, frame: YUVFrame) -> None:
        raise NotImplementedError

    def write(self, frame) -> None:
        """Append one frame (or each frame of a (T, 3, H, W) tensor)."""
        for f in _flatten([frame]):
            yuv = _as_yuv(f, self.matrix, self.full_range)
            h, w = yuv.y.shape
            if self.width is None:
                _check_even(self.path, w, h)
                self.width, self.height = w, h
                self._open()
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
        """Finish the file."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Y4MWriter(VideoWriter):
    """Writes YUV4MPEG2 C420jpeg with XCOLORRANGE (FULL/LIMITED) from ``full_range``."""

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fr = Fraction(self.fps).limit_denominator(1001)
        rng = "FULL" if self.full_range else "LIMITED"
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(
            f"YUV4MPEG2 W{self.width} H{self.height} F{fr.numerator}:{fr.denominator} Ip A1:1 C420jpeg "
            f"XCOLORRANGE={rng}\n".encode()
        )

    def _write(self, f: YUVFrame) -> None:
        self._fh.write(b"FRAME\n")
        for p in f:
            self._fh.write(np.ascontiguousarray(p).tobytes())

    def close(self) -> None:
        if getattr(self, "_fh", None) is not None:
            self._fh.close()
            self._fh = None


class YUVWriter(VideoWriter):
    """Writes raw planar I420 (no header: put WxH and fps in the file name, e.g. out_640x272_25.yuv)."""

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()

    def _write(self, f: YUVFrame) -> None:
        for p in f:
            self._fh.write(np.ascontiguousarray(p).tobytes())

    close = Y4MWriter.close


class PNGDirWriter(VideoWriter):
    """Writes ``{index:06d}.png`` 8-bit RGB files into a folder. YUV input is converted with the colour settings;
    RGB input is rounded to 8 bits directly (no 4:2:0 step)."""

    def write(self, frame) -> None:
        for f in _flatten([frame]):
            if isinstance(f, tuple):
                yuv = _as_yuv(f, self.matrix, self.full_range)
                rgb = yuv420_to_rgb(*yuv, self.matrix, self.full_range)
            elif isinstance(f, torch.Tensor | np.ndarray) and f.ndim == 3 and f.shape[0] == 3:
                rgb = torch.as_tensor(f).detach().cpu().float()
            else:
                raise VideoFormatError(f"cannot write frame of type {type(f).__name__} to PNG")
            h, w = rgb.shape[-2:]
            if self.width is None:
                self.width, self.height = w, h
                self.path.mkdir(parents=True, exist_ok=True)
            img = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            out = self.path / f"{self.frames_written:06d}.png"
            if not cv2.imwrite(str(out), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
                raise VideoFormatError(f"{out}: cv2 could not write the PNG (check the folder is writable)")
            self.frames_written += 1


class FFmpegWriter(VideoWriter):
    """Encodes through ffmpeg (stdin pipe of yuv420p): libx264 at ``crf`` (0 = lossless) by default.

    The stream is tagged with the colour matrix and range used.
    """

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
        self._proc = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        space = {"bt709": "bt709", "bt601": "smpte170m"}.get(self.matrix.lower().replace(".", ""), "bt709")
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
        ]
        cmd += ["yuv420p", "-s", f"{self.width}x{self.height}", "-r", f"{self.fps:g}", "-i", "-"]
        cmd += ["-c:v", self.codec, "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p"]
        cmd += ["-colorspace", space]
        if self.codec == "libx264":  # tag the range in the bitstream without any pixel conversion
            cmd += ["-bsf:v", f"h264_metadata=video_full_range_flag={int(self.full_range)}"]
        cmd += [str(self.path)]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._finalizer = weakref.finalize(self, _kill_process, self._proc)

    def _write(self, f: YUVFrame) -> None:
        try:
            for p in f:
                self._proc.stdin.write(np.ascontiguousarray(p).tobytes())
        except BrokenPipeError as e:
            err = self._proc.stderr.read().decode(errors="replace").strip()
            raise VideoFormatError(f"{self.path}: ffmpeg encoder failed: {err}") from e

    def close(self) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace").strip()
        rc = proc.wait(timeout=600)
        self._finalizer.detach()
        if rc != 0:
            raise VideoFormatError(f"{self.path}: ffmpeg encoder exited with {rc}: {err}")


def open_writer(path, fps: float = DEFAULT_FPS, **kw) -> VideoWriter:
    """Writer by extension: .y4m, .yuv, a folder name without extension -> PNG frames, anything else -> ffmpeg."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext in Y4M_EXTENSIONS:
        return Y4MWriter(p, fps, **kw)
    if ext in RAW_EXTENSIONS:
        return YUVWriter(p, fps, **kw)
    if ext == "" or p.is_dir():
        return PNGDirWriter(p, fps, **kw)
    return FFmpegWriter(p, fps, **kw)


def _write_all(writer: VideoWriter, frames: Iterable) -> int:
    with writer:
        for f in _flatten(frames):
            writer.write(f)
    if writer.frames_written == 0:
        raise VideoFormatError(f"{writer.path}: no frames to write")
    return writer.frames_written


def write_y4m(path, frames: Iterable, fps: float = DEFAULT_FPS, **kw) -> int:
    """Write frames (YUVFrames or RGB tensors in [0, 1]) as Y4M; returns the number of frames."""
    return _write_all(Y4MWriter(path, fps, **kw), frames)


def write_yuv(path, frames: Iterable, fps: float = DEFAULT_FPS, **kw) -> int:
    """Write frames as raw I420; returns the number of frames."""
    return _write_all(YUVWriter(path, fps, **kw), frames)


def write_png_dir(path, frames: Iterable, fps: float = DEFAULT_FPS, **kw) -> int:
    """Write frames as ``{i:06d}.png`` files in a folder; returns the number of frames."""
    return _write_all(PNGDirWriter(path, fps, **kw), frames)


def write_mp4(
    path, frames: Iterable, fps: float = DEFAULT_FPS, crf: int = 0, codec: str = "libx264", **kw
) -> int:
    """Encode frames with ffmpeg (libx264, crf 0 = lossless by default); returns the number of frames."""
    return _write_all(FFmpegWriter(path, fps, crf=crf, codec=codec, **kw), frames)


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
        out += [d / f for f in filenames if f.lower().endswith(VIDEO_EXTENSIONS)]
        dirnames.sort()
    return sorted(out)


__all__ = [
    "YUVFrame",
    "VideoReader",
    "RawYUVReader",
    "Y4MReader",
    "FFmpegReader",
    "PNGDirReader",
    "open_video",
    "probe",
    "parse_yuv_name",
    "VideoWriter",
    "Y4MWriter",
    "YUVWriter",
    "PNGDirWriter",
    "FFmpegWriter",
    "open_writer",
    "write_y4m",
    "write_yuv",
    "write_png_dir",
    "write_mp4",
    "find_videos",
    "is_video_path",
    "yuv420_to_rgb",
    "rgb_to_yuv420",
]
