"""Video I/O, colour conversion, clip datasets and the training DataModule.

Light to import: ``gvc.data`` pulls in numpy/torch/cv2 only; litdata (shards) and Lightning (datamodule) load when
``gvc.data.shards`` / ``gvc.data.datamodule`` are imported.
"""

from gvc.data.color import rgb_to_yuv420, yuv420_to_rgb
from gvc.data.datasets import (
    SyntheticMotionClips,
    VideoClipDataset,
    collate_clips,
    make_synthetic_clip,
    sample_clips,
)
from gvc.data.io import (
    VideoReader,
    YUVFrame,
    open_video,
    open_writer,
    write_mp4,
    write_png_dir,
    write_y4m,
    write_yuv,
)
from gvc.data.sampling import ResumableDataLoader, ResumableSampler, SampleKey, sample_generator

__all__ = [
    "ResumableDataLoader",
    "ResumableSampler",
    "SampleKey",
    "SyntheticMotionClips",
    "VideoClipDataset",
    "VideoReader",
    "YUVFrame",
    "collate_clips",
    "make_synthetic_clip",
    "open_video",
    "open_writer",
    "sample_generator",
    "rgb_to_yuv420",
    "sample_clips",
    "write_mp4",
    "write_png_dir",
    "write_y4m",
    "write_yuv",
    "yuv420_to_rgb",
]
