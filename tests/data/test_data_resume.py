"""Resume continues at the exact data position: same batches (tensors) and losses as an uninterrupted run.

Covers gvc.data.sampling (ResumableSampler / ResumableDataLoader, per-sample generators), its wiring through
ClipDataModule into Lightning's checkpoint, and litdata's StreamingDataLoader for shards.
"""

from __future__ import annotations

import hashlib
import json

import lightning as L
import pytest
import torch

from gvc.data.datamodule import ClipDataModule, from_conf
from gvc.data.datasets import VideoClipDataset, make_synthetic_clip
from gvc.data.io import write_y4m
from gvc.data.sampling import ResumableSampler, SampleKey, epoch_permutation
from tests._training_helpers import compose_cfg, fast_overrides, per_step, read_metrics, run_train


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


class BatchRecorder(L.Callback):
    """Lightning callback (built by Hydra from ``callbacks.record``): appends one JSON line per training batch to
    ``path``: the step it trains (our counter + 1), the digest of the batch and of each of its items."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        rec = {
            "step": int(pl_module.gvc_step) + 1,
            "batch": _digest(batch),
            "items": [_digest(b) for b in batch],
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def _records(path) -> dict[int, dict]:
    with open(path) as f:
        return {r["step"]: r for r in map(json.loads, f)}


@pytest.mark.parametrize("every", [0, 6], ids=["saved_at_step_budget", "saved_mid_epoch_periodic"])
def test_iframe_mid_epoch_resume_sees_the_same_batches(tmp_path, every):
    """8 clips, batch 2 = 4 steps/epoch. 8 steps straight vs 6 steps (stop in the middle of epoch 1) + resume to 8:
    steps 7-8 train on the same batch tensors with the same losses, the resumed epoch 1 holds every clip exactly
    once (it went on, it did not restart), and the checkpoint carries the loader position (epoch 1, 4 samples).

    every=0: last.ckpt written at the end of fit (step budget reached; Lightning counts the epoch as finished and
    does not restore loader state: ClipDataModule's own state does). every=6: written at the batch end of step 6,
    as on a kill/preemption (Lightning restores the loader state, and so does the datamodule: loaded twice)."""
    total, split = 8, 6
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"

    def cfg(out, steps):
        rec = [
            f"+callbacks.record._target_={__name__}.BatchRecorder",
            f"+callbacks.record.path={out}/batches.jsonl",
        ]
        return compose_cfg("smoke_iframe", fast_overrides(out, steps, every) + ["stage.warmup_steps=2", *rec])

    run_train(cfg(full_dir, total))
    run_train(cfg(part_dir, split))
    ckpt = torch.load(part_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    loader_state = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert [(s["epoch"], s["samples"]) for s in loader_state] == [(1, 4)]
    assert ckpt["ClipDataModule"]["train_loader"] == loader_state[0]
    res = run_train(cfg(part_dir, total))
    assert res["resumed_from"] is not None and res["step"] == total

    full, part = _records(full_dir / "batches.jsonl"), _records(part_dir / "batches.jsonl")
    assert sorted(part) == list(range(1, total + 1))
    for s in range(1, total + 1):
        assert part[s]["batch"] == full[s]["batch"], s  # the resumed steps too (7, 8)
    epoch0 = [i for s in range(1, 5) for i in full[s]["items"]]
    epoch1 = [i for s in range(5, 9) for i in part[s]["items"]]
    assert len(set(epoch0)) == 8 and set(epoch1) == set(epoch0) and len(epoch1) == 8
    assert epoch1 != epoch0  # reshuffled per epoch
    loss_full = per_step(read_metrics(full_dir), "train/g_loss")
    loss_part = per_step(read_metrics(part_dir), "train/g_loss")
    for s in range(split + 1, total + 1):
        assert loss_part[s] == pytest.approx(loss_full[s], rel=1e-5, abs=1e-7), s


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    for k in range(2):  # 2 videos of 9 frames 48x40
        write_y4m(d / f"v{k}.y4m", make_synthetic_clip(9, 40, 48, noise_std=0.0, seed=k)[0])
    return d


def _folder_dm(video_dir, num_workers: int) -> ClipDataModule:
    return from_conf(
        "folder",
        train_path=str(video_dir),
        clip_length=2,
        crop_size=16,
        batch_size=2,
        num_workers=num_workers,
        pin_memory=False,
        persistent_workers=False,
        samples_per_video=5,  # 10 items = 5 batches per epoch
        max_clip_length=None,  # the videos have 9 frames
        seed=7,
    )


def _pass(loader, lightning_epoch: int) -> list[torch.Tensor]:
    """One pass; Lightning calls set_epoch(its own epoch count) first, which must not move the data position."""
    loader.sampler.set_epoch(lightning_epoch)
    return list(loader)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_state_round_trip(video_dir, num_workers):
    """Random crops/starts + shuffle: 3 batches, state_dict, a fresh datamodule loads it (after the global RNG
    moved on) and yields exactly the rest of epoch 0 and then epoch 1 of an uninterrupted loader."""
    loader = _folder_dm(video_dir, num_workers).train_dataloader()
    ref = _pass(loader, 0) + _pass(loader, 1)  # one uninterrupted loader: epochs 0 and 1
    assert len(ref) == 10 and loader.position == (2, 0)
    assert not all(torch.equal(a, b) for a, b in zip(ref[:5], ref[5:], strict=True))  # reshuffled, new crops

    torch.manual_seed(123)
    loader = _folder_dm(video_dir, num_workers).train_dataloader()
    it = iter(loader)
    seen = [next(it) for _ in range(3)]
    state = loader.state_dict()
    del it
    assert (state["epoch"], state["samples"]) == (0, 6)

    torch.manual_seed(999)
    resumed = _folder_dm(video_dir, num_workers).train_dataloader()
    resumed.load_state_dict(state)
    assert resumed.position == (0, 6)
    rest = _pass(resumed, 5)  # a different Lightning epoch number changes nothing
    assert len(rest) == 2 and resumed.position == (1, 0)
    seen += rest + _pass(resumed, 6)
    assert len(seen) == len(ref)
    for a, b in zip(seen, ref, strict=True):
        assert torch.equal(a, b)


def test_samples_depend_only_on_seed_epoch_index(video_dir):
    """A training sample is a function of (seed, epoch, index): the global RNG plays no part; epochs differ."""
    ds = VideoClipDataset(video_dir, clip_length=2, crop_size=16, samples_per_video=2, seed=5)
    torch.manual_seed(0)
    a = [ds[SampleKey(i, 3)] for i in range(len(ds))]
    torch.manual_seed(1)
    b = [ds[SampleKey(i, 3)] for i in range(len(ds))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    other_epoch = [ds[SampleKey(i, 4)] for i in range(len(ds))]
    assert not all(torch.equal(x, y) for x, y in zip(a, other_epoch, strict=True))
    other_seed = VideoClipDataset(video_dir, clip_length=2, crop_size=16, samples_per_video=2, seed=6)
    assert not all(torch.equal(x, other_seed[SampleKey(i, 3)]) for i, x in enumerate(a))


def test_sampler_ranks_and_world_size_change():
    """Ranks split each epoch's permutation; a position saved with 2 ranks resumes on 1 rank at the same global
    sample (the first k samples of each rank are the first k * ranks of the epoch's order)."""
    data = list(range(12))
    order = epoch_permutation(12, 3, 2)
    shards = [ResumableSampler(data, num_replicas=2, rank=r, seed=3, yield_keys=False) for r in range(2)]
    for s in shards:
        s.set_epoch(2)
    per_rank = [list(s) for s in shards]
    assert sorted(per_rank[0] + per_rank[1]) == data
    assert [per_rank[r][k] for k in range(6) for r in range(2)] == order
    one = ResumableSampler(data, seed=3)
    one.resume(2, 3 * 2 // 1)  # ResumableDataLoader.load_state_dict's conversion of (samples=3, 2 ranks)
    keys = list(one)
    assert [k.index for k in keys] == order[6:] and {k.epoch for k in keys} == {2}
    assert [k.index for k in one] == epoch_permutation(12, 3, 2)  # the skip is one-shot
    one.resume(2, 12)  # end of epoch 2 = start of epoch 3
    assert one.epoch == 3 and [k.index for k in one] == epoch_permutation(12, 3, 3)


def test_shard_loader_state_round_trip(video_dir, tmp_path):
    """Shards (litdata StreamingDataLoader, what ClipDataModule builds for kind=shards): its state_dict taken
    after 2 batches and loaded into a fresh loader continues with the same batches, crops included."""
    from gvc.data.prepare import prepare_clips

    out = tmp_path / "shards"
    prepare_clips(video_dir, out, frames=4, size=32, seed=1, progress=False)

    def loader():
        dm = from_conf(
            "shards",
            train_path=str(out),
            clip_length=2,
            crop_size=16,
            batch_size=1,
            num_workers=0,
            pin_memory=False,
            uint8_transfer=False,
            shard_seed=3,
        )
        dm.setup("fit")
        return dm.train_dataloader()

    ref_loader = loader()
    assert type(ref_loader).__name__ == "StreamingDataLoader"
    ref = list(ref_loader)
    assert len(ref) >= 3
    torch.manual_seed(5)
    first = loader()
    it = iter(first)
    seen = [next(it) for _ in range(2)]
    state = first.state_dict()
    del it
    torch.manual_seed(6)
    resumed = loader()
    resumed.load_state_dict(state)
    seen += list(resumed)
    assert len(seen) == len(ref)
    for a, b in zip(seen, ref, strict=True):
        assert torch.equal(a, b)
