"""gvc prepare-clips (gvc.data.prepare) and the shard dataset (gvc.data.shards)."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch

from gvc.data.color import yuv420_to_rgb
from gvc.data.datamodule import from_conf
from gvc.data.datasets import make_synthetic_clip
from gvc.data.io import open_video, write_png_dir, write_y4m, write_yuv
from gvc.data.prepare import add_parser, main, prepare_clips
from gvc.data.shards import ShardClipDataset, read_manifest
from gvc.errors import ConfigError

FRAMES, SIZE = 4, 32


def _clip(seed: int, t: int = 9, h: int = 40, w: int = 48) -> torch.Tensor:
    return make_synthetic_clip(t, h, w, noise_std=0.0, seed=seed)[0]


@pytest.fixture(scope="module")
def shard_src(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    write_y4m(src / "a.y4m", _clip(0))  # 9 frames -> 2 windows of 4
    write_yuv(src / "sub" / "b_48x40_25.yuv", _clip(1))
    write_png_dir(src / "c_frames", _clip(2, t=4))  # 1 window
    write_y4m(src / "tiny.y4m", _clip(3, h=16, w=16))  # smaller than --size: skipped
    (src / "broken.mp4").write_bytes(b"not a video" * 100)  # undecodable: skipped, run goes on
    return src


@pytest.fixture(scope="module")
def shards(shard_src, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    rc = main(
        [
            str(shard_src),
            str(out),
            "--frames",
            str(FRAMES),
            "--size",
            str(SIZE),
            "--group",
            "8",
            "--seed",
            "1",
        ]
    )
    assert rc == 0
    return out


def test_prepare_writes_manifest_and_clips(shards, shard_src):
    m = read_manifest(shards)
    assert sorted(m["done"]) == ["a.y4m", "c_frames", "sub/b_48x40_25.yuv"]
    assert sorted(m["skipped"]) == ["broken.mp4", "tiny.y4m"] and "smaller" in m["skipped"]["tiny.y4m"]
    assert "cannot decode" in m["skipped"]["broken.mp4"]
    assert m["num_clips"] == 5 and m["settings"]["frames"] == FRAMES
    # settings null = each file's own convention, recorded per video (Y4M: XCOLORRANGE=FULL; raw/PNG: default)
    assert m["settings"]["matrix"] is None and m["settings"]["full_range"] is None
    assert m["colour"] == {k: {"matrix": "bt709", "full_range": True} for k in m["done"]}
    import litdata

    ds = litdata.StreamingDataset(str(shards))
    assert len(ds) == 5
    item = next(ds[i] for i in range(len(ds)) if ds[i]["video"] == "a.y4m" and ds[i]["start"] == 4)
    clip = np.asarray(item["clip"])
    assert clip.shape == (FRAMES, 3, SIZE, SIZE) and clip.dtype == np.uint8
    # stored pixels are the RGB conversion of the source crop at (start, y, x)
    y0, x0 = item["y"], item["x"]
    assert y0 % 2 == 0 and x0 % 2 == 0
    with open_video(shard_src / "a.y4m") as r:
        y, u, v = r.read_yuv_clip(4, FRAMES)
    ref = yuv420_to_rgb(
        y[:, y0 : y0 + SIZE, x0 : x0 + SIZE],
        u[:, y0 // 2 : (y0 + SIZE) // 2, x0 // 2 : (x0 + SIZE) // 2],
        v[:, y0 // 2 : (y0 + SIZE) // 2, x0 // 2 : (x0 + SIZE) // 2],
    )
    assert np.array_equal(clip, (ref * 255).round().to(torch.uint8).numpy())


def test_prepare_resumes_and_appends_only_new_videos(shards, shard_src, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(shards, out)
    src = tmp_path / "src"
    shutil.copytree(shard_src, src)
    kw = dict(frames=FRAMES, size=SIZE, seed=1, progress=False)

    def shard_files():
        return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "gvc_manifest.json"}

    before = shard_files()
    m = prepare_clips(src, out, **kw)  # nothing new: no shard rewritten
    assert m["num_clips"] == 5 and shard_files() == before
    write_y4m(src / "d.y4m", _clip(4, t=8))  # 2 more windows
    m = prepare_clips(src, out, **kw)
    assert m["num_clips"] == 7 and "d.y4m" in m["done"]
    import litdata

    ds = litdata.StreamingDataset(str(out))
    videos = sorted(ds[i]["video"] for i in range(len(ds)))
    assert len(ds) == 7 and videos.count("d.y4m") == 2 and videos.count("a.y4m") == 2
    with pytest.raises(ConfigError, match="other settings"):
        prepare_clips(src, out, frames=FRAMES + 1, size=SIZE, progress=False)


def test_shard_dataset_windows_crops_and_errors(shards):
    import litdata

    ds = ShardClipDataset(shards, clip_length=3, crop_size=16, train=True)
    x = ds[0]
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    val = ShardClipDataset(shards, clip_length=2, crop_size=None, train=False)
    a = val[0]
    full = torch.from_numpy(np.asarray(litdata.StreamingDataset.__getitem__(val, 0)["clip"])).float() / 255
    assert torch.equal(a, full[1:3])  # centred 2-window of 4 stored frames, full 32x32
    val.set_clip_length(FRAMES + 1)
    with pytest.raises(ConfigError, match="stored clip length"):
        val[0]
    with pytest.raises(ConfigError, match="prepare-clips"):
        ShardClipDataset(shards.parent / "nowhere")


def test_shards_datamodule_batches(shards):
    dm = from_conf(
        "shards",
        train_path=str(shards),
        clip_length=2,
        crop_size=16,
        batch_size=2,
        num_workers=0,
        pin_memory=False,
        uint8_transfer=True,
    )
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b.shape == (2, 2, 3, 16, 16) and b.dtype == torch.uint8
    f = dm.on_after_batch_transfer(b, 0)  # what Lightning calls after moving the batch to the device
    assert f.dtype == torch.float32 and torch.equal(f, b.float() / 255)
    dm.set_clip_length(4)
    assert next(iter(dm.train_dataloader())).shape == (2, 4, 3, 16, 16)
    assert next(iter(dm.val_dataloader())).shape[1:] == (4, 3, 16, 16)


def test_add_parser_registers_prepare_clips(tmp_path):
    p = argparse.ArgumentParser(prog="gvc")
    sub = p.add_subparsers(dest="cmd")
    add_parser(sub)
    args = p.parse_args(
        ["prepare-clips", "in", str(tmp_path), "--frames", "6", "--size", "128", "--limited-range"]
    )
    assert (args.frames, args.size, args.full_range, args.stride) == (6, 128, False, None)
    assert args.func.__name__ == "run"
    assert json.dumps(vars(args), default=str)  # plain values, printable for logs


def test_shard_dataset_jitters_its_own_crop_in_float_and_in_uint8(shards):
    """With an augment, a training shard clip is the plain clip (same window and crop) jittered; in uint8 output
    it is that jittered clip rounded to 8 bits."""
    from gvc.data.augment import PhotometricJitter, jitter

    class Recording(PhotometricJitter):
        def draw(self, rng):
            self.last = super().draw(rng)
            return self.last

    aug = Recording(prob=1.0, brightness=[0.5, 1.25], saturation=[0.6, 1.5])
    plain = ShardClipDataset(shards, clip_length=3, crop_size=16, train=True)
    jittered = ShardClipDataset(shards, clip_length=3, crop_size=16, train=True, augment=aug)
    as_uint8 = ShardClipDataset(
        shards, clip_length=3, crop_size=16, train=True, augment=aug, output_uint8=True
    )
    got = jittered[0]
    expected = jitter(plain[0], *aug.last)
    assert torch.allclose(got, expected, atol=1e-6) and not torch.equal(got, plain[0])
    q = as_uint8[0]
    assert q.dtype == torch.uint8 and torch.equal(q, expected.mul(255).round().to(torch.uint8))
