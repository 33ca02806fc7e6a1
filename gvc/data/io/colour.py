"""Which YUV <-> RGB convention a file uses: what it states, else the default (BT.709 full range).

- Containers (mp4/mkv/...): the stream's colour range and matrix as the demuxer/decoder reports them (PyAV
  ``codec_context.color_range`` / ``colorspace``). An unstated range means limited for the coded formats whose
  specification says so (H.264, HEVC, VVC, AV1, VP8/9, MPEG-1/2/4: the range flag defaults to 0), full for the
  ``yuvj`` pixel formats (JPEG); an unstated matrix gets the default.
- Y4M: ``XCOLORRANGE=FULL|LIMITED``, limited when absent (ffmpeg's convention: it writes no tag for limited-range
  video); Y4M has no matrix tag, so the default matrix.
- Raw .yuv says nothing: the default.

A stated matrix gvc cannot convert (BT.2020, SMPTE 240M, FCC, YCgCo) is an error unless the caller names the
matrix to use (``matrix=`` / ``--matrix``): reading it as BT.709 would be silently wrong.
"""

from __future__ import annotations

from typing import NamedTuple

from gvc.errors import VideoFormatError

DEFAULT_MATRIX = "bt709"
DEFAULT_FULL_RANGE = True
MATRIX_NAMES = ("bt709", "bt601")

#: libav AVColorSpace values (PyAV codec_context.colorspace) -> our matrix; None = unspecified
_AV_MATRIX = {1: "bt709", 2: None, 5: "bt601", 6: "bt601"}
_AV_MATRIX_UNSUPPORTED = {
    0: "RGB/GBR",
    4: "FCC",
    7: "SMPTE 240M",
    8: "YCgCo",
    9: "BT.2020 non-constant luminance",
    10: "BT.2020 constant luminance",
    11: "SMPTE 2085",
    12: "chromaticity-derived non-constant luminance",
    13: "chromaticity-derived constant luminance",
    14: "ICtCp",
}
#: codecs whose bitstream range flag defaults to limited (video_full_range_flag = 0)
LIMITED_BY_DEFAULT = frozenset(
    {
        "h264",
        "hevc",
        "vvc",
        "av1",
        "libdav1d",
        "libaom-av1",
        "vp8",
        "vp9",
        "mpeg1video",
        "mpeg2video",
        "mpeg4",
    }
)
#: matrix -> libav AVColorSpace value written into encoded streams
AV_COLORSPACE = {"bt709": 1, "bt601": 6}
#: full_range -> libav AVColorRange value (2 = JPEG/full, 1 = MPEG/limited)
AV_COLOR_RANGE = {True: 2, False: 1}


class Colour(NamedTuple):
    """A YUV <-> RGB convention; None in a field means 'not stated'."""

    matrix: str | None
    full_range: bool | None


def matrix_name(matrix: str) -> str:
    """'BT.709' / 'bt-601' / ... -> 'bt709' / 'bt601'."""
    key = str(matrix).lower().replace(".", "").replace("-", "").replace("_", "")
    if key not in MATRIX_NAMES:
        raise VideoFormatError(f"unknown colour matrix {matrix!r}: use one of {list(MATRIX_NAMES)}")
    return key


def resolve_colour(path, requested: Colour, stated: Colour) -> tuple[Colour, str]:
    """(matrix, full_range) to use and where it came from: 'user', 'file', 'default' or a mix 'file+default'."""
    if requested.matrix is not None:
        matrix, m_src = matrix_name(requested.matrix), "user"
    elif stated.matrix is not None:
        matrix, m_src = stated.matrix, "file"
    else:
        matrix, m_src = DEFAULT_MATRIX, "default"
    if requested.full_range is not None:
        full, r_src = bool(requested.full_range), "user"
    elif stated.full_range is not None:
        full, r_src = bool(stated.full_range), "file"
    else:
        full, r_src = DEFAULT_FULL_RANGE, "default"
    sources = [m_src] if m_src == r_src else [m_src, r_src]
    return Colour(matrix, full), "+".join(sources)


def colour_from_av(path, codec: str, pix_fmt: str | None, color_range: int, colorspace: int) -> Colour:
    """What a libav stream states (see the module docstring); raises for a matrix gvc cannot convert."""
    if colorspace in _AV_MATRIX_UNSUPPORTED:
        raise VideoFormatError(
            f"{path}: the stream's colour matrix is {_AV_MATRIX_UNSUPPORTED[colorspace]}; gvc converts with "
            "BT.709 or BT.601 only: pass the matrix to use explicitly (--matrix bt709 / matrix=bt709) to read "
            "it anyway, or convert it (ffmpeg -vf colorspace=all=bt709)"
        )
    matrix = _AV_MATRIX.get(colorspace)
    if color_range == 2 or (pix_fmt or "").startswith("yuvj"):
        full: bool | None = True
    elif color_range == 1:
        full = False
    else:
        full = False if codec in LIMITED_BY_DEFAULT else None
    return Colour(matrix, full)


def colour_from_y4m(xcolorrange: str | None) -> Colour:
    """Y4M: XCOLORRANGE=FULL/LIMITED states the range; without it the range is limited, ffmpeg's convention
    (ffmpeg writes no tag for limited-range video and reads an untagged Y4M as limited). No matrix tag."""
    tag = (xcolorrange or "").upper()
    return Colour(None, tag == "FULL")
