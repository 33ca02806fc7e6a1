"""gvc itself as one codec among others, through the public coder API of :mod:`gvc.codec`.

Settings are model files (one per rate point): ``encode(video, label, out)`` runs
:func:`gvc.codec.coder.encode_video` with that model and the run's GOP into a real ``.gvc`` file; ``decode`` runs
:func:`gvc.codec.coder.decode_video` and converts the RGB output to 4:2:0 in the colour convention its stream
header records; ``frame_records`` reads each packet's type and size from the container
(:func:`gvc.codec.bitstream.open_bitstream`), exactly as ``gvc info`` does.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gvc.data.io import YUVFrame, open_video, rgb_to_yuv420
from gvc.errors import ConfigError
from gvc.eval.codecs.base import EncodedFile, FrameRecord
from gvc.eval.source import file_sha256


def gop_structure(types: Sequence[str]) -> str:
    """How a coded stream's frame types are arranged, in words: "all intra", "I then P" (one I-frame) or
    "I every N, P between"."""
    intra = [i for i, t in enumerate(types) if t == "I"]
    if not types or len(intra) == len(types):
        return "all intra" if len(types) > 1 else "one I-frame"
    if intra == [0]:
        return "I then P (one I-frame)"
    gaps = {b - a for a, b in zip(intra, intra[1:])}
    return f"I every {gaps.pop()}, P between" if len(gaps) == 1 else f"I at {intra}, P between"


def model_settings(paths: Sequence[Path]) -> list[str]:
    """A unique, readable label per model file: its stem, or `<parent>_<stem>` (then `_<i>`) where stems collide
    (e.g. two runs' `model.gvcm`), so their bitstreams and cached points never overwrite each other."""
    stems = [p.stem for p in paths]
    labels = [s if stems.count(s) == 1 else f"{p.parent.name}_{s}" for p, s in zip(paths, stems)]
    return [s if labels.count(s) == 1 else f"{s}_{i}" for i, s in enumerate(labels)]


class GVCCodec:
    """The gvc codec over a set of model files; ``labels`` (from :func:`model_settings`) are its settings.

    ``refiner``: a gvc.codec.refine.LatentRefiner for encode-time refinement (`gvc encode --refine-steps N`);
    None codes the encoder's latents. With a refiner, each encode's ``extra["refine"]`` lists the refined frames'
    reports (gvc.codec.refine.FrameRefinement as dicts)."""

    name = "gvc"
    ext = "gvc"

    def __init__(self, models: Sequence[str | Path], gop: int = -1, device: str = "cpu", refiner=None):
        self.paths = [Path(str(m)).expanduser() for m in models]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise ConfigError(
                f"model files not found: {missing}; give .gvcm files written by training (paths.output_dir/"
                "model.gvcm) or by `gvc export CKPT -o MODEL.gvcm`"
            )
        self.labels = model_settings(self.paths)
        self.by_label = dict(zip(self.labels, self.paths))
        self.gop = int(gop)
        self.device = device
        self.refiner = refiner
        self._sha = {label: file_sha256(p) for label, p in self.by_label.items()}
        self._models: dict[str, torch.nn.Module] = {}

    def settings(self) -> dict[str, Any]:
        return {"kind": "gvc", "gop": self.gop, "models": {k: str(p) for k, p in self.by_label.items()},
                "model_sha256": self._sha}  # fmt: skip

    def setting_identity(self, label: str) -> dict[str, Any]:
        """What one setting's result depends on: the model file's content and the GOP."""
        return {"kind": "gvc", "gop": self.gop, "model_sha256": self._sha[label]}

    def unavailable_reason(self) -> str | None:
        return None

    def training_record(self, label: str) -> dict[str, Any]:
        """The training record the model file carries ({} when it has none: written before records existed)."""
        from gvc.codec.modelfile import read_model_file

        return read_model_file(self.by_label[label])["training"]

    def cli_commands(self, video, label: str, out: Path) -> str:
        """The `gvc encode` and `gvc decode` command lines that write the same ``out`` and decode it (to
        ``out`` with suffix .y4m) as this codec's encode / decode do."""
        model = str(self.by_label[label])
        colour = []
        matrix, full = video.requested_colour.get("matrix"), video.requested_colour.get("full_range")
        if matrix is not None:
            colour += ["--matrix", str(matrix)]
        if full is not None:
            colour.append("--full-range" if full else "--limited-range")
        encode = ["gvc", "encode", str(video.path), "-o", str(out), "--model", model, "--gop", str(self.gop),
                  "--frames", str(video.count), *colour, "--device", str(self.device), "-q", "-y"]  # fmt: skip
        if self.refiner is not None:
            encode += ["--refine-steps", str(self.refiner.steps)]
            if self.refiner.rate != "objective":
                encode += ["--refine-rate", str(self.refiner.rate)]
        decode = ["gvc", "decode", str(out), "-o", str(Path(out).with_suffix(".y4m")), "--model", model,
                  "--device", str(self.device), "-q", "-y"]  # fmt: skip
        return f"{shlex.join(encode)} && {shlex.join(decode)}"

    def model(self, label: str) -> torch.nn.Module:
        if label not in self.by_label:
            raise ConfigError(f"gvc has no model labelled {label!r}; models: {self.labels}")
        if label not in self._models:
            from gvc.codec.modelfile import load_model_file

            self._models = {label: load_model_file(self.by_label[label], device=self.device)}  # one in memory
        return self._models[label]

    def encode(self, video, setting: str, out: Path) -> EncodedFile:
        from gvc.codec.coder import encode_video

        model = self.model(setting)
        t0 = time.perf_counter()
        with open_video(video.path, **video.requested_colour) as reader, torch.no_grad():
            stats = encode_video(reader, model, out, gop=self.gop, frames=video.count, refiner=self.refiner)
        seconds = time.perf_counter() - t0
        size = Path(out).stat().st_size
        call = self.cli_commands(video, setting, Path(out))
        types = [f.frame_type for f in stats.frames]
        extra = {"model": str(self.by_label[setting]), "estimated_bpp": stats.estimated_bpp,
                 "container_bytes": stats.container_bytes, "structure": gop_structure(types)}  # fmt: skip
        if self.refiner is not None:
            extra["refine"] = [f.refine for f in stats.frames if f.refine is not None]
        return EncodedFile(Path(out), size, 8.0 * size / video.pixels, setting, call, seconds, extra)

    def decode(self, path: Path, video=None) -> list[YUVFrame]:
        """Decode a stream this codec wrote (named ``<label>.gvc``) with that label's model."""
        from gvc.codec.coder import decode_video

        label = Path(path).stem
        out = []
        with torch.no_grad():
            decoded = decode_video(path, self.model(label))
            for rgb in decoded:
                y, u, v = rgb_to_yuv420(rgb, decoded.matrix, decoded.full_range)
                out.append(YUVFrame(y.numpy(), u.numpy(), v.numpy()))
        return out

    def frame_records(self, path: Path, video=None) -> list[FrameRecord]:
        from gvc.codec.bitstream import open_bitstream

        with open_bitstream(path) as reader:
            records = [FrameRecord(p.index, p.frame_type, 8 * p.nbytes) for p in reader]
            reader.check_complete()
        return records
