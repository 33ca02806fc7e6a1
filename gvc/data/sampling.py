"""A training data stream that is a deterministic function of (seed, position), and resumable.

- :class:`SampleKey` ``(index, epoch)``: what :class:`ResumableSampler` yields to the dataset. Random choices of a
  training sample (start frame, crop) come from :func:`sample_generator` ``(seed, epoch, index)``, never from the
  global or a worker's RNG, so a sample is the same whatever the worker count, prefetching or resume.
- :class:`ResumableSampler`: per-epoch permutation from ``(seed, epoch)`` (no global RNG), split over ranks like
  DistributedSampler (it is one, so Lightning does not replace it under DDP); :meth:`ResumableSampler.resume`
  makes its next pass start ``start`` samples into the epoch by index arithmetic (nothing is decoded to skip).
- :class:`ResumableDataLoader`: a DataLoader that owns the data position and continues it on every pass, with
  ``state_dict() / load_state_dict()`` (Lightning saves and restores the state of a training loader with these).
  It counts the batches it has handed to its consumer in its own ``__iter__`` (not what workers prefetched), so
  the state after the k-th batch of an epoch is ``{epoch, samples = k * batch_size}`` per rank.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from gvc.errors import ConfigError

log = logging.getLogger(__name__)

_MASK64 = (1 << 64) - 1


class SampleKey(NamedTuple):
    """Dataset key of one training sample: dataset ``index`` drawn in ``epoch`` (a plain int key is epoch 0)."""

    index: int
    epoch: int


def split_key(key) -> tuple[int, int]:
    """(index, epoch) of a dataset key: a SampleKey, or a plain int (epoch 0)."""
    if isinstance(key, SampleKey):
        return int(key.index), int(key.epoch)
    return int(key), 0


def _mix(*values: int) -> int:
    """A 63-bit seed mixed from integers (numpy SeedSequence: nearby inputs give unrelated seeds)."""
    state = np.random.SeedSequence([int(v) & _MASK64 for v in values]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The CPU generator of sample ``index`` in ``epoch``: a function of (seed, epoch, index) only."""
    return torch.Generator().manual_seed(_mix(seed, epoch, index))


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of ``range(n)`` of ``epoch``: a function of (n, seed, epoch) only."""
    g = torch.Generator().manual_seed(_mix(seed, epoch, n))
    return torch.randperm(n, generator=g).tolist()


class ResumableSampler(DistributedSampler):
    """Per-epoch shuffled (or sequential) indices of this rank, as :class:`SampleKey` (or ints), resumable.

    Args:
        dataset: the map-style dataset (only its length is used).
        num_replicas, rank: data-parallel world size and this rank (1, 0 on one process).
        shuffle: permute per epoch from (seed, epoch); otherwise dataset order.
        seed: base seed of the order (and, through the keys, of per-sample randomness).
        drop_last: drop the tail that does not split evenly over ranks (otherwise pad by repeating indices).
        yield_keys: yield SampleKey(index, epoch) (datasets that draw per-sample randomness); False: ints.
    The rank's share of epoch e is ``order[rank::num_replicas]`` of the (padded) permutation, so the first k samples
    of every rank are the first k * num_replicas of the epoch's order.
    """

    def __init__(
        self,
        dataset,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        yield_keys: bool = True,
    ):
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.yield_keys = yield_keys
        self.start = 0  # samples of this rank to skip at the start of the next pass (one-shot, see resume())

    def set_epoch(self, epoch: int) -> None:
        """Standalone use: the epoch of the next pass (a pending resume position stays only for the same epoch).
        Under a ResumableDataLoader the loader's position decides instead."""
        if int(epoch) != self.epoch:
            self.start = 0
        self.epoch = int(epoch)

    def resume(self, epoch: int, start: int) -> None:
        """Make the next pass yield epoch ``epoch`` from its ``start``-th sample of this rank on; a position at or
        past the end of the epoch becomes the start of the next one."""
        if start < 0:
            raise ConfigError(f"resume position must be >= 0, got {start}")
        if start >= self.num_samples:
            epoch, start = epoch + 1, 0
        self.epoch, self.start = int(epoch), int(start)

    def epoch_indices(self, epoch: int) -> list[int]:
        """All dataset indices of this rank in ``epoch``, in order (no resume offset)."""
        n = len(self.dataset)
        order = epoch_permutation(n, self.seed, epoch) if self.shuffle else list(range(n))
        if not self.drop_last:
            pad = self.total_size - n
            while pad > 0:
                order += order[:pad]
                pad = self.total_size - len(order)
        order = order[: self.total_size]
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self):
        epoch, start = self.epoch, self.start
        self.start = 0
        for i in self.epoch_indices(epoch)[start:]:
            yield SampleKey(i, epoch) if self.yield_keys else i

    def __len__(self) -> int:
        """Samples of a whole epoch of this rank (a resumed pass yields fewer; Lightning counts from its own
        restored batch progress)."""
        return self.num_samples


class ResumableDataLoader(DataLoader):
    """DataLoader over a :class:`ResumableSampler`: a continuous, resumable stream of batches.

    Same arguments as torch's DataLoader; ``sampler`` must be a ResumableSampler (no ``shuffle``/``batch_sampler``).
    The loader owns the data position (epoch, samples of this rank handed out in that epoch): every pass (every
    ``iter()``) continues at the position, a pass that runs to its end moves it to the start of the next epoch, and
    ``state_dict() / load_state_dict()`` save / restore it (Lightning does this for a training loader, and
    ClipDataModule does it too when Lightning considers the epoch finished, e.g. a run stopped at max steps in the
    middle of an epoch). The data epoch is ours: Lightning's ``sampler.set_epoch`` (its own epoch count) is
    overridden by the position at the start of each pass.

    Without an explicit ``generator`` one seeded from the sampler's seed is used, so creating an iterator never
    draws from the global torch RNG (the training step's random stream stays aligned between an uninterrupted and
    a resumed run).

    State: ``{"epoch", "samples", "num_replicas", "seed"}``.
    """

    def __init__(self, dataset, *args, sampler: ResumableSampler | None = None, **kwargs):
        if not isinstance(sampler, ResumableSampler):
            raise ConfigError("ResumableDataLoader needs sampler=ResumableSampler(...)")
        if kwargs.get("generator") is None:
            kwargs["generator"] = torch.Generator().manual_seed(_mix(sampler.seed, 0x5EED))
        super().__init__(dataset, *args, sampler=sampler, **kwargs)
        self._epoch, self._samples = sampler.epoch, sampler.start

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, samples of this rank already handed out in it)."""
        return self._epoch, self._samples

    def __iter__(self):
        # counted here, at the consumer: batches prefetched by workers but never handed out do not count
        sampler = self.sampler
        sampler.resume(self._epoch, self._samples)  # (normalises a position at the end of an epoch)
        self._epoch, self._samples = sampler.epoch, sampler.start
        total, step = len(sampler), self.batch_size or 1
        for batch in super().__iter__():
            self._samples = min(self._samples + step, total)
            yield batch
        self._epoch, self._samples = self._epoch + 1, 0  # a tail dropped by drop_last ends the epoch too

    def state_dict(self) -> dict:
        return {
            "epoch": int(self._epoch),
            "samples": int(self._samples),
            "num_replicas": int(self.sampler.num_replicas),
            "seed": int(self.sampler.seed),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue at the saved position: the next pass yields the rest of the saved epoch (all ranks resume at
        the same global position; a changed world size is converted through the global sample count). Loading
        the same state twice is harmless."""
        sampler = self.sampler
        if int(state.get("seed", sampler.seed)) != sampler.seed:
            log.warning(
                "data seed changed since the checkpoint (%s -> %s): the resumed data order is a new one",
                state.get("seed"),
                sampler.seed,
            )
        samples = int(state["samples"]) * int(state.get("num_replicas", 1)) // sampler.num_replicas
        sampler.resume(int(state["epoch"]), samples)
        self._epoch, self._samples = sampler.epoch, sampler.start
