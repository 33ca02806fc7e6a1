"""gvc itself as one codec among others, through the public coder API of :mod:`gvc.codec`.

Settings: a single-rate model file is one setting (one rate point), labelled by the file (:func:`model_settings`).
A variable-rate model file (trained with ``rate=multi``; :func:`gvc.codec.coder.rate_levels` >= 2) is a codec
with one setting per quality level q, like a baseline's CRF: ``<model label>@q<q>`` (``m@q3``, ``m@q3.5``), coded
with ``encode_video(quality=q)`` (``gvc encode --q q``); which q: ``qualities`` (``gvc.qualities`` of
conf/evaluate.yaml; None = every integer level of the model). :meth:`GVCCodec.quality_codec` gives one such model
as a :class:`~gvc.eval.codecs.base.TunableCodec` over q, which :class:`gvc.eval.ratematch.BitrateMatcher`
matches to a target bpp (settings ``<model label>@<target>bpp``).

``encode(video, label, out)`` runs :func:`gvc.codec.coder.encode_video` with the setting's model (and q) and the
run's GOP into a real ``.gvc`` file; ``decode`` runs :func:`gvc.codec.coder.decode_video` (the q is in every
packet) and converts the RGB output to 4:2:0 in the colour convention its stream header records;
``frame_records`` reads each packet's type and size from the container (:func:`gvc.codec.bitstream.open_bitstream`),
exactly as ``gvc info`` does.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gvc.codec.bitstream import QUALITY_SCALE, quantize_quality
from gvc.data.io import YUVFrame, open_video, rgb_to_yuv420
from gvc.errors import ConfigError
from gvc.eval.codecs.base import EncodedFile, FrameRecord
from gvc.eval.source import file_sha256


def format_quality(q: float) -> str:
    """A quality level as labels and `gvc encode --q` write it: exact on the packet's grid (3, 3.5, 0.00390625)."""
    return f"{float(q):.10g}"


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
    """The gvc codec over a set of model files. ``labels`` are its settings: a single-rate model's label (from
    :func:`model_settings`), or ``<label>@q<q>`` per quality level of a variable-rate model (module docstring);
    ``model_labels`` / ``by_label`` the model files, ``levels`` each model's rate levels (0: single rate).

    ``qualities``: the levels every variable-rate model is swept over (None: each model's integer levels 0 ..
    rate_levels - 1); on the packet's 1/256 grid, each within every variable-rate model's levels (ConfigError
    otherwise). Single-rate models ignore it. ``refiner``: a gvc.codec.refine.LatentRefiner for encode-time
    refinement (`gvc encode --refine-steps N`); None codes the encoder's latents. With a refiner, each encode's
    ``extra["refine"]`` lists the refined frames' reports (gvc.codec.refine.FrameRefinement as dicts)."""

    name = "gvc"
    ext = "gvc"

    def __init__(
        self,
        models: Sequence[str | Path],
        gop: int = -1,
        device: str = "cpu",
        refiner=None,
        qualities: Sequence[float] | None = None,
    ):
        self.paths = [Path(str(m)).expanduser() for m in models]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise ConfigError(
                f"model files not found: {missing}; give .gvcm files written by training (paths.output_dir/"
                "model.gvcm) or by `gvc export CKPT -o MODEL.gvcm`"
            )
        self.model_labels = model_settings(self.paths)
        self.by_label = dict(zip(self.model_labels, self.paths))
        self.gop = int(gop)
        self.device = device
        self.refiner = refiner
        self._sha = {label: file_sha256(p) for label, p in self.by_label.items()}
        self._models: dict[str, torch.nn.Module] = {}
        #: setting label -> (model label, quality level or None)
        self.setting_of: dict[str, tuple[str, float | None]] = {}
        from gvc.codec.coder import rate_levels

        self.levels = {label: rate_levels(self.model(label)) for label in self.model_labels}
        for label in self.model_labels:
            for q in self._qualities(label, qualities):
                self.setting_of[label if q is None else f"{label}@q{format_quality(q)}"] = (label, q)
        self.labels = list(self.setting_of)

    def _qualities(self, label: str, qualities: Sequence[float] | None) -> list[float | None]:
        levels = self.levels[label]
        if not levels:
            return [None]
        if qualities is None:
            return [float(q) for q in range(levels)]
        bad = [q for q in qualities if isinstance(q, bool) or not isinstance(q, int | float)]
        if bad:
            raise ConfigError(f"gvc.qualities must be numbers (quality levels), got {bad}")
        out = [quantize_quality(q) for q in qualities]
        outside = [q for q, c in zip(qualities, out) if not 0 <= c <= levels - 1]
        if outside:
            raise ConfigError(
                f"gvc.qualities {outside}: model {label} ({self.by_label[label]}) has quality levels 0 .. "
                f"{levels - 1}"
            )
        same = sorted({format_quality(c) for c in out if out.count(c) > 1})
        if same:
            raise ConfigError(
                f"gvc.qualities {list(qualities)} name the level(s) {same} twice (q is coded in steps of "
                f"1/{QUALITY_SCALE})"
            )
        return out

    @property
    def variable_rate(self) -> list[str]:
        """The labels of the variable-rate model files (rate_levels >= 2), in the order given."""
        return [label for label in self.model_labels if self.levels[label]]

    def target_label(self, model_label: str, target_bpp: float) -> str:
        """The setting of a variable-rate model rate-matched to ``target_bpp``: ``<model label>@<target>bpp``."""
        return f"{model_label}@{float(target_bpp):g}bpp"

    def model_label(self, setting: str) -> str:
        """The model label of a setting: a swept setting's model, or the label before the last ``@`` (a
        rate-matched setting ``m@0.13bpp``, a search file ``m@q1.5``)."""
        if setting in self.setting_of:
            return self.setting_of[setting][0]
        if setting in self.by_label:
            return setting
        head = setting.rpartition("@")[0]
        if head in self.by_label:
            return head
        raise ConfigError(f"gvc has no setting {setting!r}; settings: {self.labels}")

    def settings(self) -> dict[str, Any]:
        out = {"kind": "gvc", "gop": self.gop, "models": {k: str(p) for k, p in self.by_label.items()},
               "model_sha256": self._sha}  # fmt: skip
        if self.variable_rate:
            out["rate_levels"] = {k: self.levels[k] for k in self.variable_rate}
            out["qualities"] = {
                k: [q for m, q in self.setting_of.values() if m == k] for k in self.variable_rate
            }
        return out

    def setting_identity(self, label: str) -> dict[str, Any]:
        """What one setting's result depends on: the model file's content, the GOP and a swept setting's q."""
        model = self.model_label(label)
        ident: dict[str, Any] = {"kind": "gvc", "gop": self.gop, "model_sha256": self._sha[model]}
        quality = self.setting_of.get(label, (model, None))[1]
        if quality is not None:
            ident["quality"] = quality
        return ident

    def unavailable_reason(self) -> str | None:
        return None

    def training_record(self, label: str) -> dict[str, Any]:
        """The training record the model file carries ({} when it has none: written before records existed)."""
        from gvc.codec.modelfile import read_model_file

        return read_model_file(self.by_label[self.model_label(label)])["training"]

    def cli_commands(self, video, label: str, out: Path, quality: float | None = None) -> str:
        """The `gvc encode` and `gvc decode` command lines that write the same ``out`` and decode it (to
        ``out`` with suffix .y4m) as this codec's encode / decode do; ``quality``: the q of a variable-rate model
        (`--q`), by default the setting's own."""
        model_label = self.model_label(label)
        if quality is None:
            quality = self.setting_of.get(label, (model_label, None))[1]
        model = str(self.by_label[model_label])
        colour = []
        matrix, full = video.requested_colour.get("matrix"), video.requested_colour.get("full_range")
        if matrix is not None:
            colour += ["--matrix", str(matrix)]
        if full is not None:
            colour.append("--full-range" if full else "--limited-range")
        encode = ["gvc", "encode", str(video.path), "-o", str(out), "--model", model, "--gop", str(self.gop),
                  "--frames", str(video.count), *colour, "--device", str(self.device), "-q", "-y"]  # fmt: skip
        if quality is not None:
            encode += ["--q", format_quality(quality)]
        if self.refiner is not None:
            encode += ["--refine-steps", str(self.refiner.steps)]
            if self.refiner.rate != "objective":
                encode += ["--refine-rate", str(self.refiner.rate)]
        decode = ["gvc", "decode", str(out), "-o", str(Path(out).with_suffix(".y4m")), "--model", model,
                  "--device", str(self.device), "-q", "-y"]  # fmt: skip
        return f"{shlex.join(encode)} && {shlex.join(decode)}"

    def model(self, label: str) -> torch.nn.Module:
        """The model of a model label or of a setting (one model in memory at a time)."""
        label = self.model_label(label)
        if label not in self._models:
            from gvc.codec.modelfile import load_model_file

            self._models = {label: load_model_file(self.by_label[label], device=self.device)}  # one in memory
        return self._models[label]

    def encode(self, video, setting: str, out: Path) -> EncodedFile:
        """Encode ``video`` at one of :attr:`labels` (a model, or a model at a quality level) into ``out``."""
        if setting not in self.setting_of:
            raise ConfigError(f"gvc has no setting {setting!r}; settings: {self.labels}")
        model_label, quality = self.setting_of[setting]
        return self.encode_at(video, model_label, quality, out, setting=setting)

    def encode_at(
        self, video, model_label: str, quality: float | None, out: Path, setting: Any = None
    ) -> EncodedFile:
        """Encode ``video`` with one model at quality level ``quality`` (None for a single-rate model) into
        ``out``; the EncodedFile's setting is ``setting``, by default the q (or the model label)."""
        from gvc.codec.coder import encode_video

        model = self.model(model_label)
        t0 = time.perf_counter()
        with open_video(video.path, **video.requested_colour) as reader, torch.no_grad():
            stats = encode_video(reader, model, out, gop=self.gop, frames=video.count, refiner=self.refiner,
                                 quality=quality)  # fmt: skip
        seconds = time.perf_counter() - t0
        size = Path(out).stat().st_size
        call = self.cli_commands(video, model_label, Path(out), stats.quality)
        types = [f.frame_type for f in stats.frames]
        extra = {"model": str(self.by_label[model_label]), "estimated_bpp": stats.estimated_bpp,
                 "container_bytes": stats.container_bytes, "structure": gop_structure(types)}  # fmt: skip
        if stats.quality is not None:
            extra["q"] = stats.quality
        if self.refiner is not None:
            extra["refine"] = [f.refine for f in stats.frames if f.refine is not None]
        if setting is None:
            setting = model_label if stats.quality is None else stats.quality
        return EncodedFile(Path(out), size, 8.0 * size / video.pixels, setting, call, seconds, extra)

    def quality_codec(self, model_label: str) -> GVCQualityCodec:
        """One variable-rate model as a tunable codec over its quality level (for the rate matcher)."""
        if not self.levels.get(model_label):
            raise ConfigError(f"gvc model {model_label!r} codes one rate: it has no quality level to search")
        return GVCQualityCodec(self, model_label)

    def decode(self, path: Path, video=None) -> list[YUVFrame]:
        """Decode a stream this codec wrote (named ``<setting>.gvc``) with that setting's model."""
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


class GVCQualityCodec:
    """One variable-rate model file of a :class:`GVCCodec` as a :class:`~gvc.eval.codecs.base.TunableCodec`: the
    setting is the quality level q in ``q_range`` (0 .. rate_levels - 1) on the packet's grid (``q_step`` =
    1/256), and rate *rises* with q (``rate_rises_with_q``, which :class:`gvc.eval.ratematch.BitrateMatcher`
    honours). Encodes go through :meth:`GVCCodec.encode_at`; the EncodedFile's setting is the q coded."""

    name = "gvc"
    ext = "gvc"
    rate_rises_with_q = True
    q_step = 1 / QUALITY_SCALE

    def __init__(self, parent: GVCCodec, model_label: str):
        self.parent = parent
        self.model_label = model_label
        self.q_range = (0.0, float(parent.levels[model_label] - 1))

    def format_q(self, q: float) -> str:
        return format_quality(q)

    def settings(self) -> dict[str, Any]:
        return {
            **self.parent.setting_identity(self.model_label),
            "rate_levels": self.parent.levels[self.model_label],
        }

    def unavailable_reason(self) -> str | None:
        return None

    def encode(self, video, setting: float, out: Path) -> EncodedFile:
        return self.parent.encode_at(video, self.model_label, float(setting), out)

    def decode(self, path: Path, video=None) -> list[YUVFrame]:
        return self.parent.decode(path, video)

    def frame_records(self, path: Path, video=None) -> list[FrameRecord]:
        return self.parent.frame_records(path, video)
