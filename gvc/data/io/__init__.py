"""Video readers and writers: raw YUV 4:2:0, Y4M, containers (PyAV: anything libav decodes), PNG folders.

Frames come as :class:`YUVFrame` (uint8 numpy planes Y (H, W), U, V (H/2, W/2)) or as RGB float tensors
(3, H, W) in [0, 1] converted with the reader's colour convention: what the file states (container tags, Y4M
XCOLORRANGE), BT.709 full range where it states nothing (raw .yuv), or what the caller passes (see
:mod:`gvc.data.io.colour`). Every bad input raises :class:`gvc.errors.VideoFormatError` naming the file and the
fix. Writers write under a temporary name and rename when closed, so a failed write leaves nothing behind.

Modules: ``base`` (frame type, reader/writer bases, shared checks), ``colour`` (which convention a file uses),
``raw`` (I420 layout, MCL-JCV names, raw files), ``y4m``, ``container`` (PyAV probe/decode/encode), ``png``,
``files`` (open by kind, find videos).
"""

from gvc.data.color import rgb_to_yuv420, yuv420_to_rgb
from gvc.data.io.base import DEFAULT_FPS, VideoReader, VideoWriter, YUVFrame
from gvc.data.io.colour import DEFAULT_FULL_RANGE, DEFAULT_MATRIX, Colour
from gvc.data.io.container import CONTAINER_EXTENSIONS, AVReader, AVWriter, probe
from gvc.data.io.files import (
    VIDEO_EXTENSIONS,
    ffmpeg_exe,
    find_videos,
    is_video_path,
    open_video,
    open_writer,
    write_mp4,
    write_png_dir,
    write_y4m,
    write_yuv,
)
from gvc.data.io.png import PNG_EXTENSIONS, PNGDirReader, PNGDirWriter
from gvc.data.io.raw import RAW_EXTENSIONS, RawYUVReader, YUVWriter, parse_yuv_name, raw_yuv_name
from gvc.data.io.y4m import Y4M_420_TAGS, Y4M_EXTENSIONS, Y4MReader, Y4MWriter

#: the names these classes had when decoding went through an ffmpeg subprocess
FFmpegReader = AVReader
FFmpegWriter = AVWriter
FFMPEG_EXTENSIONS = CONTAINER_EXTENSIONS

__all__ = [
    "AVReader",
    "AVWriter",
    "CONTAINER_EXTENSIONS",
    "Colour",
    "DEFAULT_FPS",
    "DEFAULT_FULL_RANGE",
    "DEFAULT_MATRIX",
    "FFMPEG_EXTENSIONS",
    "FFmpegReader",
    "FFmpegWriter",
    "PNGDirReader",
    "PNGDirWriter",
    "PNG_EXTENSIONS",
    "RAW_EXTENSIONS",
    "RawYUVReader",
    "VIDEO_EXTENSIONS",
    "VideoReader",
    "VideoWriter",
    "Y4MReader",
    "Y4MWriter",
    "Y4M_420_TAGS",
    "Y4M_EXTENSIONS",
    "YUVFrame",
    "YUVWriter",
    "ffmpeg_exe",
    "find_videos",
    "is_video_path",
    "open_video",
    "open_writer",
    "parse_yuv_name",
    "probe",
    "raw_yuv_name",
    "rgb_to_yuv420",
    "write_mp4",
    "write_png_dir",
    "write_y4m",
    "write_yuv",
    "yuv420_to_rgb",
]
