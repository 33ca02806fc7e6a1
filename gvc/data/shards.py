"""Clip shards made by ``gvc prepare-clips`` (LitData chunks), read with litdata's StreamingDataset.

Each stored item: ``clip`` uint8 (T_s, 3, S, S) RGB (colour settings in the shard dir's gvc_manifest.json),
``video`` (source name), ``start`` (first frame index), ``x``/``y`` (crop offset in the source frame).
"""

from __future__ import annotations

import json
from pathlib import Path

import litdata
import numpy as np
import torch

from gvc.data.augment import PhotometricJitter
from gvc.data.datasets import ClipLength, _ClipLengthMixin, _crop_box
from gvc.data.prepare import MANIFEST_NAME
from gvc.data.sampling import sample_generator
from gvc.errors import ConfigError


def read_manifest(shard_dir) -> dict:
    """The prepare-clips manifest of a local shard dir ({} when absent)."""
    p = Path(shard_dir) / MANIFEST_NAME
    return json.loads(p.read_text()) if p.is_file() else {}


class ShardClipDataset(_ClipLengthMixin, litdata.StreamingDataset):
    """Clips from prepare-clips shards (a local dir, or a remote one litdata can stream).

    With T < T_s a random T-window (train) or the centred window (val) is taken; with ``crop_size`` < S a random
    (train) / centred (val) crop, drawn from ``sample_generator(seed, epoch, sample index)`` (no global/worker RNG).
    T > T_s raises ConfigError. Train shuffles (litdata's shuffle, seeded by ``seed``); DDP/worker sharding is
    litdata's, and so is the resumable position (litdata.StreamingDataLoader.state_dict / load_state_dict).
    ``augment``: photometric jitter of training clips (gvc.data.augment), from the same generator after the crop.
    Items: float (T, 3, crop, crop) in [0, 1], or uint8 when ``output_uint8`` (then divide by 255 on the device).
    Use with litdata.StreamingDataLoader.
    """

    def __init__(
        self,
        input_dir,
        clip_length: int = 12,
        crop_size: int | None = None,
        train: bool = True,
        seed: int = 42,
        output_uint8: bool = False,
        augment: PhotometricJitter | None = None,
        **streaming_kwargs,
    ):
        path = Path(str(input_dir))
        if "://" not in str(input_dir) and not (path / "index.json").is_file():
            raise ConfigError(
                f"{input_dir}: no litdata index.json here; make shards with: gvc prepare-clips SRC_DIR {input_dir}"
            )
        super().__init__(str(input_dir), shuffle=train, seed=seed, **streaming_kwargs)
        self.clip_length = ClipLength(clip_length)
        self.crop_size = crop_size
        self.train = train
        self.output_uint8 = output_uint8
        self.augment = augment if train else None

    def __getitem__(self, index):
        item = super().__getitem__(index)
        clip = item["clip"]
        clip = torch.from_numpy(np.asarray(clip)) if not isinstance(clip, torch.Tensor) else clip
        ts, _, h, w = clip.shape
        t = self.clip_length.get()
        if t > ts:
            raise ConfigError(
                f"clip length {t} > stored clip length {ts}: prepare shards with --frames >= {t}"
            )
        crop = self.crop_size if self.crop_size is not None and self.crop_size < min(h, w) else None
        if self.train:
            # (seed, epoch, sample index): the same window/crop in any worker and after a resume
            rng = sample_generator(self.seed, self.current_epoch, int(getattr(index, "index", index)))
            start = int(torch.randint(0, ts - t + 1, (1,), generator=rng))
            y0, x0, ch, cw = _crop_box(h, w, crop, rng)
        else:
            start = (ts - t) // 2
            y0, x0, ch, cw = _crop_box(h, w, crop, None)
        clip = clip[start : start + t, :, y0 : y0 + ch, x0 : x0 + cw]
        if self.augment is not None:  # the shards hold R'G'B' without their matrix: BT.709's luma [ours]
            jittered = self.augment(clip.float().div_(255.0), rng)
            return jittered.mul_(255.0).round_().to(torch.uint8) if self.output_uint8 else jittered
        if self.output_uint8:
            return clip.contiguous()
        return clip.float().div_(255.0)
