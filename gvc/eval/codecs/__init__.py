"""Evaluated codecs behind one protocol (:class:`Codec`): gvc, ffmpeg encoders and external commands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gvc.eval.codecs.base import (
    Codec,
    EncodedFile,
    FrameRecord,
    TunableCodec,
    expected_intra,
    gop_mismatch,
)
from gvc.eval.codecs.external import ExternalCommandCodec, build_external_codec
from gvc.eval.codecs.ffmpeg import FFmpegCodec, build_ffmpeg_codec, read_bitstream
from gvc.eval.codecs.gvc_codec import GVCCodec, gop_structure, model_settings


def build_codec(
    name: str, spec: Mapping[str, Any] | None, gop: int, ffmpeg: str | None = None
) -> TunableCodec:
    """A baseline codec from its config entry: ``command`` -> external command, else an ffmpeg encoder."""
    spec = dict(spec or {})
    if spec.get("command"):
        return build_external_codec(name, spec, gop, ffmpeg)
    return build_ffmpeg_codec(name, spec, gop, ffmpeg)


__all__ = [
    "Codec",
    "EncodedFile",
    "ExternalCommandCodec",
    "FFmpegCodec",
    "FrameRecord",
    "GVCCodec",
    "TunableCodec",
    "build_codec",
    "expected_intra",
    "gop_mismatch",
    "gop_structure",
    "model_settings",
    "read_bitstream",
]
