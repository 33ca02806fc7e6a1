"""Standard codecs through the ffmpeg binary of imageio-ffmpeg, in low-delay mode, matched to target bitrates.

A baseline encodes a raw I420 source file (``W x H``, 8 bit) to a real bitstream file, and decodes it back
to I420 frames. Its rate is always **bpp = 8 * bytes(output file) / (frames * W * H)**.

Default anchors (their settings live in conf/evaluate.yaml; these defaults mirror it):

- ``x265``: HEVC, ``-preset medium -tune zerolatency -x265-params crf=Q:keyint=GOP:bframes=0``, raw .hevc;
  CRF may be fractional, so after the integer bisection the search refines between the two neighbours.
- ``x265_veryslow``: the same at ``-preset veryslow`` (the stronger setting).
- ``vvc``: libvvenc (VVC) at a fixed QP, low delay; ``svtav1``: SVT-AV1 CRF with ``pred-struct=1`` (low delay);
  ``aom_av1``: libaom AV1 CRF with ``lag-in-frames=0`` (no look-ahead). A baseline whose encoder is not in the
  ffmpeg binary is reported unavailable (imageio-ffmpeg's static build has libx265 and libaom-av1, but not
  libvvenc or libsvtav1: point ``ffmpeg`` at a build that has them).
- ``command`` baselines run any external encoder (e.g. HM's ``TAppEncoder -c encoder_lowdelay_P_main.cfg``)
  from a template; the decoded output is read back with ffmpeg.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gvc.errors import ConfigError, VideoFormatError
from gvc.eval.metrics import ffmpeg_exe, ffmpeg_has

# Encoder argument templates; {q} quality parameter, {gop} key-frame interval, {preset}.
DEFAULT_BASELINES: dict[str, dict[str, Any]] = {
    "x265": {
        "encoder": "libx265",
        "args": [
            "-preset",
            "{preset}",
            "-tune",
            "zerolatency",
            "-x265-params",
            "crf={q}:keyint={gop}:bframes=0:log-level=error",
        ],  # fmt: skip
        "preset": "medium",
        "q_range": [0, 51],
        "fractional": True,
        "ext": "hevc",
        "format": "hevc",
    },
    "x265_veryslow": {
        "encoder": "libx265",
        "args": [
            "-preset",
            "{preset}",
            "-tune",
            "zerolatency",
            "-x265-params",
            "crf={q}:keyint={gop}:bframes=0:log-level=error",
        ],  # fmt: skip
        "preset": "veryslow",
        "q_range": [0, 51],
        "fractional": True,
        "ext": "hevc",
        "format": "hevc",
    },
    "vvc": {
        "encoder": "libvvenc",
        "args": [
            "-preset",
            "{preset}",
            "-qp",
            "{q}",
            "-vvenc-params",
            "IntraPeriod={gop}:DecodingRefreshType=idr",
        ],
        "preset": "medium",
        "q_range": [0, 63],
        "fractional": False,
        "ext": "266",
        "format": "vvc",
    },
    "svtav1": {
        "encoder": "libsvtav1",
        "args": ["-preset", "{preset}", "-crf", "{q}", "-g", "{gop}", "-svtav1-params", "pred-struct=1"],
        "preset": "8",
        "q_range": [1, 63],
        "fractional": False,
        "ext": "ivf",
        "format": "ivf",
    },
    "aom_av1": {
        "encoder": "libaom-av1",
        "args": [
            "-cpu-used",
            "{preset}",
            "-crf",
            "{q}",
            "-b:v",
            "0",
            "-g",
            "{gop}",
            "-lag-in-frames",
            "0",
            "-row-mt",
            "1",
        ],  # fmt: skip
        "preset": "6",
        "q_range": [0, 63],
        "fractional": False,
        "ext": "ivf",
        "format": "ivf",
    },
}


@dataclass
class RawVideo:
    """A raw 8-bit I420 file: ``frames`` frames of ``width`` x ``height`` at ``fps``."""

    path: Path
    width: int
    height: int
    fps: float
    frames: int

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3 // 2

    def raw_args(self) -> list[str]:
        return [
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            f"{self.width}x{self.height}",
            "-r",
            f"{self.fps}",
        ]


def split_i420(
    buffer: bytes | np.ndarray, width: int, height: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Split I420 bytes into frames of (Y (H, W), U (H/2, W/2), V) uint8 planes."""
    data = np.frombuffer(buffer, dtype=np.uint8).copy()  # writable planes
    ysize, csize = width * height, (width // 2) * (height // 2)
    size = ysize + 2 * csize
    if data.size % size:
        raise VideoFormatError(f"{data.size} bytes is not a whole number of {width}x{height} I420 frames")
    frames = []
    for start in range(0, data.size, size):
        y = data[start : start + ysize].reshape(height, width)
        u = data[start + ysize : start + ysize + csize].reshape(height // 2, width // 2)
        v = data[start + ysize + csize : start + size].reshape(height // 2, width // 2)
        frames.append((y, u, v))
    return frames


def iter_i420_file(
    path: str | Path, width: int, height: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Frames of a raw I420 file, read one at a time."""
    size = width * height * 3 // 2
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            if len(chunk) != size:
                raise VideoFormatError(f"{path}: truncated last frame ({len(chunk)} of {size} bytes)")
            yield split_i420(chunk, width, height)[0]


def file_bpp(path: str | Path, frames: int, width: int, height: int) -> float:
    """bpp of a real file: 8 * bytes / (frames * width * height)."""
    return 8.0 * Path(path).stat().st_size / (frames * width * height)


@dataclass
class Encoding:
    """One encode: quality parameter, output file, its real size in bytes and bpp."""

    q: float
    path: Path
    bytes: int
    bpp: float


class FFmpegBaseline:
    """A standard codec run through ffmpeg (or an external ``command``), encoding a :class:`RawVideo`.

    ``args`` is the encoder argument list with ``{q}``, ``{gop}``, ``{preset}`` placeholders; ``q_range`` the
    valid integer range of the quality parameter (higher q = lower rate); ``fractional``: q may be a float
    (x265 CRF). ``gop <= 0`` means one I-frame for the whole clip (the key-frame interval is set to the
    number of frames). ``command``: a shell-style template for an external encoder, with ``{input} {width}
    {height} {fps} {frames} {q} {gop} {output}``; its output must be a bitstream ffmpeg can decode.
    """

    def __init__(
        self,
        name: str,
        encoder: str | None = None,
        args: Sequence[str] = (),
        preset: str = "",
        q_range: Sequence[float] = (0, 51),
        fractional: bool = False,
        ext: str = "bin",
        format: str | None = None,
        command: str | None = None,
        ffmpeg: str | None = None,
        threads: int = 0,
    ):
        self.name = name
        self.encoder = encoder
        self.args = list(args)
        self.preset = str(preset)
        self.q_range = (int(q_range[0]), int(q_range[1]))
        self.fractional = fractional
        self.ext = ext
        self.format = format
        self.command = command
        self.exe = ffmpeg or ffmpeg_exe()
        self.threads = threads
        if not command and not encoder:
            raise ConfigError(f"baseline {name}: give an ffmpeg `encoder` or an external `command`")

    @classmethod
    def from_config(
        cls, name: str, spec: Mapping[str, Any] | None = None, **overrides: Any
    ) -> FFmpegBaseline:
        """Build from a config mapping; unknown names without a spec raise ConfigError."""
        if spec is None:
            if name not in DEFAULT_BASELINES:
                raise ConfigError(f"unknown baseline {name!r}; known: {list(DEFAULT_BASELINES)}")
            spec = DEFAULT_BASELINES[name]
        kwargs = {k: v for k, v in dict(spec).items() if k != "name"}
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(name, **kwargs)

    def unavailable_reason(self) -> str | None:
        """None when this baseline can run here, else why not."""
        if self.command:
            return None
        if not ffmpeg_has("encoders", self.encoder, self.exe):
            return (
                f"the ffmpeg at {self.exe} has no {self.encoder} encoder; set eval ffmpeg to a build with it"
            )
        return None

    def info(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder or "command",
            "args": self.args if not self.command else self.command,
            "preset": self.preset,
            "q_range": list(self.q_range),
            "container": self.ext,
        }

    def _format_q(self, q: float) -> str:
        return f"{q:.4g}" if self.fractional and q != int(q) else str(int(round(q)))

    def encode(self, src: RawVideo, q: float, out_path: str | Path, gop: int) -> Encoding:
        """Encode ``src`` at quality ``q`` to ``out_path`` (overwritten) -> :class:`Encoding` with the real bpp."""
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        keyint = gop if gop > 0 else src.frames + 1
        values = {
            "q": self._format_q(q),
            "gop": keyint,
            "preset": self.preset,
            "input": str(src.path),
            "width": src.width,
            "height": src.height,
            "fps": src.fps,
            "frames": src.frames,
            "output": str(out_path),
        }
        if self.command:
            cmd = [part.format(**values) for part in shlex.split(self.command)]
        else:
            cmd = [self.exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-y"] + src.raw_args()
            cmd += ["-i", str(src.path), "-frames:v", str(src.frames), "-c:v", self.encoder]
            cmd += [a.format(**values) for a in self.args]
            if self.threads:
                cmd += ["-threads", str(self.threads)]
            if self.format:
                cmd += ["-f", self.format]
            cmd += [str(out_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out_path.is_file():
            raise VideoFormatError(
                f"{self.name} encode failed ({' '.join(cmd)}): {proc.stderr.strip()[-800:]}"
            )
        size = out_path.stat().st_size
        return Encoding(float(q), out_path, size, 8.0 * size / (src.frames * src.width * src.height))

    def decode(
        self, path: str | Path, width: int, height: int
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Decode a bitstream file back to I420 frames (Y, U, V uint8 planes)."""
        cmd = [self.exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path)]
        cmd += ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-"]
        proc = subprocess.run(cmd, capture_output=True)
        if proc.returncode != 0:
            raise VideoFormatError(f"decoding {path} failed: {proc.stderr.decode(errors='replace')[-800:]}")
        return split_i420(proc.stdout, width, height)


@dataclass
class MatchResult:
    """Outcome of a bitrate search: the chosen encoding, its relative error, and every encode tried."""

    target_bpp: float
    chosen: Encoding
    rel_error: float
    within_tolerance: bool
    tried: list[Encoding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target_bpp": self.target_bpp,
            "q": self.chosen.q,
            "bpp": self.chosen.bpp,
            "bytes": self.chosen.bytes,
            "rel_error": self.rel_error,
            "within_tolerance": self.within_tolerance,
            "tried": [(e.q, e.bpp) for e in self.tried],
        }


class BitrateMatcher:
    """Finds the quality parameter whose real output bpp is closest to a target (bisection; rate falls with q).

    Encodes are cached per q, so several targets on one video share work. Integer bisection over ``q_range``
    first; for codecs with fractional q, up to ``refine_steps`` float bisection steps between the two integer
    neighbours until within ``tolerance`` (relative). Unreachable targets return the nearest end, flagged.
    """

    def __init__(
        self,
        baseline: FFmpegBaseline,
        src: RawVideo,
        gop: int,
        work_dir: str | Path,
        tolerance: float = 0.05,
        refine_steps: int = 4,
    ):
        self.baseline = baseline
        self.src = src
        self.gop = gop
        self.work_dir = Path(work_dir)
        self.tolerance = tolerance
        self.refine_steps = refine_steps
        self.cache: dict[float, Encoding] = {}

    def _encode(self, q: float) -> Encoding:
        if q not in self.cache:
            name = f"{self.baseline.name}_q{self.baseline._format_q(q)}.{self.baseline.ext}"
            self.cache[q] = self.baseline.encode(self.src, q, self.work_dir / name, self.gop)
        return self.cache[q]

    @staticmethod
    def _err(enc: Encoding, target: float) -> float:
        return abs(enc.bpp - target) / target

    def match(self, target_bpp: float) -> MatchResult:
        lo, hi = self.baseline.q_range
        tried_before = set(self.cache)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._encode(mid).bpp >= target_bpp:
                lo = mid
            else:
                hi = mid
        candidates = [self._encode(lo), self._encode(hi)]
        best = min(candidates, key=lambda e: self._err(e, target_bpp))
        if self.baseline.fractional and self._err(best, target_bpp) > self.tolerance:
            a, b = float(lo), float(hi)
            ra, rb = self._encode(a).bpp, self._encode(b).bpp
            if rb <= target_bpp <= ra:  # the target is between two integer neighbours: refine
                for _ in range(self.refine_steps):
                    mid = (a + b) / 2
                    enc = self._encode(mid)
                    if self._err(enc, target_bpp) < self._err(best, target_bpp):
                        best = enc
                    if self._err(best, target_bpp) <= self.tolerance:
                        break
                    if enc.bpp >= target_bpp:
                        a = mid
                    else:
                        b = mid
        err = self._err(best, target_bpp)
        tried = [self.cache[q] for q in sorted(set(self.cache) - tried_before)] or [best]
        return MatchResult(target_bpp, best, err, err <= self.tolerance, tried)

    def cleanup(self, keep: Sequence[Encoding] = ()) -> None:
        """Delete the files of every cached encode except ``keep``."""
        keep_paths = {e.path for e in keep}
        for enc in self.cache.values():
            if enc.path not in keep_paths and enc.path.exists():
                enc.path.unlink()


def write_raw_video(frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]] | Iterator, path: str | Path,
                    width: int, height: int, fps: float) -> RawVideo:  # fmt: skip
    """Write (Y, U, V) uint8 frames to a raw I420 file -> :class:`RawVideo`."""
    count = 0
    with open(path, "wb") as handle:
        for y, u, v in frames:
            if y.shape != (height, width):
                raise VideoFormatError(
                    f"frame {count} is {y.shape[1]}x{y.shape[0]}, expected {width}x{height}"
                )
            for plane in (y, u, v):
                handle.write(np.ascontiguousarray(plane, dtype=np.uint8).tobytes())
            count += 1
    if count == 0:
        raise VideoFormatError("no frames to write")
    return RawVideo(Path(path), width, height, fps, count)
