"""The ``Codec`` protocol every evaluated codec implements (gvc, ffmpeg encoders, external commands).

A codec encodes a :class:`~gvc.eval.source.SourceVideo` at one *setting* to a real file, decodes that file back
to 8-bit 4:2:0 frames, and reads each frame's own bits and type from the file. Its rate is always
``8 * bytes(file) / (frames * W * H)`` of the unpadded source.

- ``setting``: what one encode is run at. For gvc, the label of a model file (one model per rate point); for
  tunable codecs (:class:`TunableCodec`: ffmpeg encoders, external commands) a quality value ``q`` (CRF or QP;
  higher q = lower rate), which the rate matcher searches.
- ``settings()``: the codec's fixed configuration (encoder, preset, GOP, argument template, model hashes...),
  recorded with every result and part of its cache key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gvc.errors import ConfigError

if TYPE_CHECKING:
    from gvc.data.io import YUVFrame
    from gvc.eval.source import SourceVideo


@dataclass
class FrameRecord:
    """One coded frame as the file says: display index, type ("I", "P", "B"...) and its packet's bits."""

    index: int
    type: str
    bits: int


@dataclass
class EncodedFile:
    """A real output file of one encode: its path, size, bpp and the exact command or call that wrote it."""

    path: Path
    bytes: int
    bpp: float
    setting: Any
    command: str
    encode_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@runtime_checkable
class Codec(Protocol):
    """encode(video, setting, out) -> EncodedFile; decode(path, video) -> frames; frame_records(path)."""

    name: str

    def settings(self) -> dict[str, Any]:
        """Fixed configuration (JSON-able): recorded with results, hashed into cache keys."""
        ...

    def unavailable_reason(self) -> str | None:
        """None when the codec can run here, else why not (e.g. the ffmpeg build lacks its encoder)."""
        ...

    def encode(self, video: SourceVideo, setting: Any, out: Path) -> EncodedFile:
        """Encode ``video`` at ``setting`` to the file ``out`` (overwritten)."""
        ...

    def decode(self, path: Path, video: SourceVideo) -> list[YUVFrame]:
        """Decode the file back to ``video.count`` 8-bit 4:2:0 frames of the source size."""
        ...

    def frame_records(self, path: Path, video: SourceVideo) -> list[FrameRecord]:
        """Each frame's own bits and type, read from the file's packets, in display order."""
        ...


@runtime_checkable
class TunableCodec(Codec, Protocol):
    """A codec whose setting is a quality value: ``q_range`` (min, max), ``q_step`` (smallest step it honours:
    1 for integer QP/CRF), searched by :class:`gvc.eval.ratematch.BitrateMatcher`. Rate falls as q rises."""

    q_range: tuple[float, float]
    q_step: float

    def format_q(self, q: float) -> str: ...


def check_q_range(name: str, q_range, q_step) -> tuple[tuple[float, float], float]:
    """Validated ``(q_min, q_max), q_step`` of a tunable codec's config, ConfigError otherwise."""
    try:
        lo, hi = (float(v) for v in q_range)
        step = float(q_step)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"codec {name}: q_range must be [min, max] and q_step a number, got {q_range!r}, "
                          f"{q_step!r}") from err  # fmt: skip
    if not lo < hi or step <= 0:
        raise ConfigError(
            f"codec {name}: q_range {list(q_range)} / q_step {q_step} are not a range and a step"
        )
    return (lo, hi), step


def expected_intra(count: int, gop: int) -> list[int]:
    """Frame indices that should be intra-coded in low delay with I-frame period ``gop`` (<= 0: first only)."""
    return [i for i in range(count) if i == 0 or (gop > 0 and i % gop == 0)]


def gop_mismatch(records: list[FrameRecord], gop: int) -> str | None:
    """None when the intra frames in ``records`` are exactly where GOP ``gop`` puts them, else a description."""
    intra = [r.index for r in records if r.type == "I"]
    want = expected_intra(len(records), gop)
    if intra == want:
        return None
    return f"intra frames at {intra}, GOP {gop} expects {want}"
