"""Training checkpoint -> codec model file: ``gvc export CKPT -o model.gvcm [-y]`` (no Hydra, no Lightning module).

A gvc training checkpoint carries, under ``checkpoint["gvc"]["export"]``, the codec's class path, its constructor
config (``model.config``) and the state-dict prefix of its weights; the codec is rebuilt from those
(gvc.codec.modelfile.build_model), its weights loaded, and written with save_model_file (CDF tables updated).
Stage 1 exports the IFrameCodec, stage 2 the VideoCodec (frozen I-frame codec + P-frame codec + flow spec).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from gvc.cli_errors import ArgumentParser, check_output, created_folders, run_main, work_complete
from gvc.codec.modelfile import FORMAT_TAG as MODEL_FILE_TAG
from gvc.codec.modelfile import build_model, load_model_file, read_model_file, save_model_file, what_file_is
from gvc.errors import CheckpointError, ModelFileError

CKPT_KEY = "gvc"
#: what a training checkpoint is, for the errors that get something else
WHAT_A_CKPT_IS = "a training checkpoint is OUTPUT_DIR/checkpoints/last.ckpt of a train.py run"


def read_checkpoint(path) -> dict:
    """torch.load a gvc training checkpoint (weights only: no pickled code runs); CheckpointError if unusable."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint; give its checkpoints/last.ckpt")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged or foreign files
        # what the file is, never torch's own message (its weights_only advice is for programmers)
        raise CheckpointError(
            f"{path} is {what_file_is(path)}, not a gvc training checkpoint; {WHAT_A_CKPT_IS}"
        ) from e
    if isinstance(ckpt, dict) and ckpt.get("format") == MODEL_FILE_TAG:
        raise CheckpointError(
            f"{path} is already a gvc model file (.gvcm), not a training checkpoint: use it as it is "
            "(gvc encode --model, stage.iframe_ckpt)"
        )
    if not isinstance(ckpt, dict) or CKPT_KEY not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a gvc training checkpoint (no '{CKPT_KEY}' entry or state_dict)")
    spec = ckpt[CKPT_KEY].get("export")
    if not isinstance(spec, dict) or not {"class_path", "config", "prefix"} <= set(spec):
        raise CheckpointError(
            f"{path}: the checkpoint does not say how to rebuild its codec (gvc.export entry)"
        )
    return ckpt


def codec_from_checkpoint(path) -> nn.Module:
    """Rebuild the codec (IFrameCodec / VideoCodec) of a training checkpoint with its trained weights (CPU, eval)."""
    ckpt = read_checkpoint(path)
    spec = ckpt[CKPT_KEY]["export"]
    try:
        model = build_model(spec["class_path"], spec["config"], str(path))
    except ModelFileError as e:
        raise CheckpointError(str(e)) from e
    prefix = spec["prefix"]
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {spec['class_path']}: {str(e)[:400]}") from e
    return model.eval()


def load_codec(path) -> nn.Module:
    """A trained codec from a training checkpoint (.ckpt) or a codec model file (.gvcm); CPU, eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint or model file")
    if path.suffix == ".gvcm":
        try:
            return load_model_file(path)
        except ModelFileError as e:
            raise CheckpointError(str(e)) from e
    return codec_from_checkpoint(path)


#: the class of stage-2 codecs (I-frame codec + P-frame branch), as checkpoints and model files name it
VIDEO_CODEC = "gvc.models.video.VideoCodec"


def check_stage1_file(path, key: str = "stage.iframe_ckpt") -> None:
    """CheckpointError naming ``key`` unless ``path`` is a stage-1 training checkpoint or model file: a .gvc
    stream, a text file, ... are named for what they are, and a stage-2 model (a VideoCodec) is refused."""
    path = Path(path)
    try:
        if path.suffix == ".gvcm":
            class_path = read_model_file(path)["class_path"]
        else:
            class_path = read_checkpoint(path)[CKPT_KEY]["export"]["class_path"]
    except (ModelFileError, CheckpointError) as e:
        raise CheckpointError(f"{key}={e}") from None
    if class_path == VIDEO_CODEC:
        raise CheckpointError(
            f"{key}={path} is a stage-2 (P-frame) model; stage 2 starts from the stage-1 run's model.gvcm or "
            "checkpoints/last.ckpt (train.py +experiment=..._iframe)"
        )


def training_record(path) -> dict:
    """The training record of a checkpoint (its gvc.export.training entry) or of a model file; {} when it has
    none (written by an older gvc)."""
    path = Path(path)
    if path.suffix == ".gvcm":
        try:
            return dict(read_model_file(path)["training"])
        except ModelFileError as e:
            raise CheckpointError(str(e)) from e
    record = read_checkpoint(path)[CKPT_KEY]["export"].get("training")
    return dict(record) if isinstance(record, dict) else {}


def run(ckpt_path, out_path) -> str:
    """Write the codec of training checkpoint `ckpt_path` to `out_path` (.gvcm), with its training record;
    returns the model id. The file is written under a temporary name and renamed (save_model_file)."""
    model = codec_from_checkpoint(ckpt_path)
    return save_model_file(out_path, model, training=training_record(ckpt_path) or None)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `gvc export` on the `gvc` command's subparsers."""
    p = subparsers.add_parser(
        "export",
        help="write a .gvcm codec model file from a training checkpoint",
        description="Write the codec of a training checkpoint as a .gvcm model file (what `gvc encode` and "
        "`gvc decode` take) and print its training record. The output is never the checkpoint, an existing "
        "file is replaced only with -y, and the file is written under a temporary name and renamed.",
    )
    p.add_argument(
        "checkpoint", type=Path, help="training checkpoint (e.g. outputs/RUN/checkpoints/last.ckpt)"
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.gvcm)")
    p.add_argument("-y", "--overwrite", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_export)
    return p


def describe_record(record: dict) -> list[str]:
    """The lines `gvc export` prints about a training record: stage, step, quantization, lambda_R, the loss
    weights and the perceptual loss."""
    q, obj = record.get("quantization") or {}, record.get("objective") or {}
    params = "".join(f" {k}={v:.3g}" for k, v in (q.get("params") or {}).items())
    loss = obj.get("loss") or {}
    weights = ", ".join(
        f"{k}={v:g}" for k, v in loss.items() if isinstance(v, int | float) and not isinstance(v, bool)
    )
    perceptual = obj.get("perceptual")
    if isinstance(perceptual, dict):
        kind = str(perceptual.get("_target_", "?")).rsplit(".", 1)[-1]
        extra = ", ".join(f"{k}={v}" for k, v in perceptual.items() if k != "_target_" and v is not None)
        perceptual = f"{kind}({extra})"
    return [
        f"training record: stage {record.get('stage')}, step {record.get('step')}, quantization "
        f"{q.get('mode')}{params}, lambda_R {obj.get('lambda_R')}",
        f"loss weights: {weights or 'none recorded'}; perceptual loss: {perceptual or 'none'}",
    ]


def cmd_export(args: argparse.Namespace) -> int:
    """`gvc export CKPT -o MODEL.gvcm [-y]` (run under gvc.cli's run_main: a user error is one `error:` line)."""
    check_output(args.output, {"checkpoint": args.checkpoint}, args.overwrite)
    with created_folders(args.output):
        mid = run(args.checkpoint, args.output)
    work_complete()
    print(f"wrote {args.output} (model id {mid[:16]})")
    record = training_record(args.checkpoint)
    if record:
        for line in describe_record(record):
            print(line)
    else:
        print("no training record in the checkpoint (older gvc): `gvc encode --refine-steps` will refuse it")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m gvc.training.export CKPT -o MODEL.gvcm [-y]`: exit status 0, or 2 after one `error:` line."""
    parser = ArgumentParser(prog="gvc export", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run_main(
        lambda: cmd_export(parser.parse_args(["export", *(sys.argv[1:] if argv is None else argv)]))
    )


if __name__ == "__main__":
    sys.exit(main())
