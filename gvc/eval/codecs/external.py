"""An external encoder run from a command template, e.g. HM's low-delay P configuration for users who have it.

The template (shell-style, split with shlex, no shell) may use ``{input}`` (the raw 8-bit I420 source file),
``{width} {height} {fps} {frames} {q} {gop} {output}`` and ``{ffmpeg}`` (the ffmpeg binary). The encoder must write
a bitstream file at ``{output}`` that PyAV can decode (``format`` names its demuxer, e.g. ``hevc`` for HM's .bin).
Example (conf/evaluate.yaml)::

    hm: {command: "TAppEncoder -c encoder_lowdelay_P_main.cfg -i {input} -wdt {width} -hgt {height} -fr {fps}
         -f {frames} -q {q} --IntraPeriod={gop} -b {output} -o /dev/null", q_range: [22, 51], format: hevc, ext: bin}
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gvc.errors import ConfigError, VideoFormatError
from gvc.eval.codecs.base import EncodedFile, check_q_range
from gvc.eval.codecs.ffmpeg import _BitstreamReading, format_q, keyint
from gvc.eval.tools import ffmpeg_exe

_PLACEHOLDERS = ("input", "width", "height", "fps", "frames", "q", "gop", "output", "ffmpeg")


class ExternalCommandCodec(_BitstreamReading):
    """A tunable codec whose encoder is an external program (see module docstring); integer q by default."""

    def __init__(
        self,
        name: str,
        command: str,
        q_range: Sequence[float] = (22, 51),
        q_step: float = 1,
        format: str | None = None,
        ext: str = "bin",
        gop: int = -1,
        ffmpeg: str | None = None,
    ):
        self.name = name
        self.template = str(command)
        try:
            self.parts = shlex.split(self.template)
        except ValueError as err:
            raise ConfigError(f"codec {name}: cannot split command {self.template!r}: {err}") from err
        if not self.parts:
            raise ConfigError(f"codec {name}: empty command")
        if "{output}" not in self.template or "{input}" not in self.template:
            raise ConfigError(
                f"codec {name}: the command must name {{input}} and {{output}}: {self.template!r}"
            )
        self.q_range, self.q_step = check_q_range(name, q_range, q_step)
        self.format = format
        self.ext = str(ext)
        self.gop = int(gop)
        self.exe = ffmpeg or ffmpeg_exe()

    def settings(self) -> dict[str, Any]:
        return {"kind": "command", "command": self.template, "gop": self.gop, "q_range": list(self.q_range),
                "q_step": self.q_step, "format": self.format}  # fmt: skip

    def unavailable_reason(self) -> str | None:
        program = self.parts[0].format(ffmpeg=self.exe) if "{ffmpeg}" in self.parts[0] else self.parts[0]
        if shutil.which(program) is None and not Path(program).is_file():
            return f"the program {program!r} of codec {self.name} is not on PATH"
        return None

    def format_q(self, q: float) -> str:
        return format_q(q, self.q_step)

    def command(self, video, q: float, out: Path) -> list[str]:
        values = {"input": str(video.raw), "width": video.width, "height": video.height, "fps": f"{video.fps:g}",
                  "frames": video.count, "q": self.format_q(q), "gop": keyint(self.gop, video.count),
                  "output": str(out), "ffmpeg": self.exe}  # fmt: skip
        try:
            return [part.format(**values) for part in self.parts]
        except (KeyError, IndexError) as err:
            raise ConfigError(
                f"codec {self.name}: unknown placeholder {err} in {self.template!r}; known: {_PLACEHOLDERS}"
            ) from err

    def encode(self, video, setting: float, out: Path) -> EncodedFile:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        cmd = self.command(video, float(setting), out)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as err:
            raise VideoFormatError(f"{self.name}: cannot run {cmd[0]}: {err}") from err
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            raise VideoFormatError(
                f"{self.name} encode failed (exit {proc.returncode}, {shlex.join(cmd)}): "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}"
            )
        size = out.stat().st_size
        return EncodedFile(out, size, 8.0 * size / video.pixels, float(setting), shlex.join(cmd), seconds)


def build_external_codec(
    name: str, spec: Mapping[str, Any], gop: int, ffmpeg: str | None = None
) -> ExternalCommandCodec:
    unknown = set(spec) - {"command", "q_range", "q_step", "format", "ext"}
    if unknown:
        raise ConfigError(f"codec {name}: unknown keys {sorted(unknown)} for an external command")
    return ExternalCommandCodec(name, gop=gop, ffmpeg=ffmpeg, **dict(spec))
