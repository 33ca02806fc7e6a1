"""Folders of PNG frames (RGB): the reader gives the pixels exactly; the writer writes ``{index:06d}.png``."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch

from gvc.data.color import rgb_to_yuv420, yuv420_to_rgb
from gvc.data.io.base import (
    DEFAULT_FPS,
    VideoReader,
    VideoWriter,
    YUVFrame,
    as_yuv,
    check_even,
    flatten,
    make_parent,
    temporary_name,
)
from gvc.data.io.colour import Colour
from gvc.errors import VideoFormatError

PNG_EXTENSIONS = (".png",)
_OURS = re.compile(r"^\d{6}\.png$")


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


class PNGDirReader(VideoReader):
    """A folder of PNG frames (sorted naturally by name: frame_2 before frame_10), 8- or 16-bit RGB/gray.

    :meth:`read_rgb` gives the PNG pixels exactly; :meth:`read_yuv` converts them to 4:2:0 with the colour
    settings (default BT.709 full range: PNG states no YUV convention).
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
        self._set_colour(Colour(None, None))
        first = self._load(0)
        self.height, self.width = first.shape[-2:]
        self.conversion = self._conversion(self.files[0])
        check_even(self.path, self.width, self.height)
        self.num_frames = len(self.files)

    @staticmethod
    def _conversion(f: Path) -> str | None:
        """What coding changes in these frames (judged by the first): gray, 16-bit, alpha."""
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        notes = []
        if img.dtype == np.uint16:
            notes.append("16-bit PNG frames: decoded output is 8-bit")
        if img.ndim == 2:
            notes.append("gray PNG frames: coded as RGB (R = G = B)")
        elif img.shape[2] == 4:
            notes.append("the alpha channel is dropped")
        return "; ".join(notes) or None

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
        self._check_clip(start, length)
        return torch.stack([self._load(i) for i in range(start, start + length)])

    def _read_yuv(self, index: int) -> YUVFrame:
        y, u, v = rgb_to_yuv420(self._load(index), self.matrix, self.full_range)
        return YUVFrame(y.numpy(), u.numpy(), v.numpy())


class PNGDirWriter(VideoWriter):
    """Writes ``{index:06d}.png`` 8-bit RGB files into a folder. YUV input is converted with the colour settings;
    RGB input is rounded to 8 bits directly (no 4:2:0 step).

    Frames go to a hidden sibling folder that replaces ``path`` when closed; an existing ``path`` folder keeps
    its other files but loses earlier ``NNNNNN.png`` frames (a shorter video must not inherit stale ones).
    """

    def write(self, frame) -> None:
        for f in flatten([frame]):
            if isinstance(f, tuple):
                yuv = as_yuv(f, self.matrix, self.full_range)
                rgb = yuv420_to_rgb(*yuv, self.matrix, self.full_range)
            elif isinstance(f, torch.Tensor | np.ndarray) and f.ndim == 3 and f.shape[0] == 3:
                rgb = torch.as_tensor(f).detach().cpu().float()
            else:
                raise VideoFormatError(f"cannot write frame of type {type(f).__name__} to PNG")
            h, w = rgb.shape[-2:]
            if self.width is None:
                self._start(w, h)
            elif (w, h) != (self.width, self.height):
                raise VideoFormatError(
                    f"{self.path}: frame {w}x{h} differs from the first {self.width}x{self.height}"
                )
            img = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            out = self._tmp / f"{self.frames_written:06d}.png"
            if not cv2.imwrite(str(out), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
                raise VideoFormatError(f"{out}: cv2 could not write the PNG (check the folder is writable)")
            self.frames_written += 1

    def _start(self, w: int, h: int) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise VideoFormatError(f"{self.path}: exists and is not a folder (PNG frames need a folder)")
        self.width, self.height = w, h  # RGB frames may have any size
        make_parent(self.path)
        self._tmp = temporary_name(self.path)
        self._tmp.mkdir()

    def _commit(self, tmp: Path) -> None:
        if not self.path.exists():
            os.replace(tmp, self.path)
            return
        for old in self.path.iterdir():
            if _OURS.match(old.name):
                old.unlink()
        for f in tmp.iterdir():
            os.replace(f, self.path / f.name)

    def _remove_tmp(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)
