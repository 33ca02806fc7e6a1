"""The .gvcm codec model file: everything `gvc encode/decode` need, without Lightning or Hydra.

One file written by `torch.save` holding only weights-only-safe values (str, int, dicts, tensors), read back with
`torch.load(weights_only=True)`, so loading never runs pickled code:

    format      "gvcm"
    version     FORMAT_VERSION
    class_path  e.g. "gvc.models.iframe.IFrameCodec" (only classes defined under gvc.models are accepted)
    config      JSON text of `model.config`, the constructor kwargs (nested sub-models: see `build_model`)
    state_dict  the weights, including the entropy coder's CDF tables (the model's `update(force=True)` is called
                before saving, so the decoder uses the very tables the encoder used, never recomputed ones)
    model_id    sha256 hex of class path + config + every state-dict tensor (name, dtype, shape, bytes); checked
                on load, so a modified or damaged file is refused. Its first 16 bytes mark every bitstream.
    training    (optional) JSON text of the training record `gvc export` copies from the checkpoint: stage, step,
                quantization mode (config and the mode/parameters at export), objective (loss weights, the rate
                controller's lambda_R and target, the perceptual loss spec), and for a stage-2 model the record
                of its I-frame stage under "iframe". Encode-time refinement reads it; decoding never does, so it
                is not part of the model id (older files without it load as before, with an empty record).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from gvc.errors import ModelFileError
from gvc.models.config import LEGACY_CONFIG

FORMAT_TAG = "gvcm"
FORMAT_VERSION = 1
ALLOWED_PREFIX = "gvc.models."
#: a nested sub-model in a config: {"class_path": "gvc.models....", "config": {...}}
NESTED_KEYS = frozenset({"class_path", "config"})
_CLASS_PATH_RE = re.compile(r"^gvc\.models(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_FIX = "re-export it from the training checkpoint with `gvc export CKPT -o MODEL.gvcm`"
#: what a model file is, for the errors that get something else
WHAT_A_MODEL_FILE_IS = (
    "a model file is the .gvcm that training writes (OUTPUT_DIR/model.gvcm) or that "
    "`gvc export CKPT -o MODEL.gvcm` writes from a training checkpoint"
)
_BITSTREAM_MAGIC = b"\x89GVC"  # gvc.codec.bitstream.MAGIC (not imported: this module must stay light)


def with_legacy_values(class_path: str, config: dict) -> dict:
    """`config` of a model file with the keys an OLD file lacks filled from gvc.models.config.LEGACY_CONFIG (a
    copy; the file's own values win). A VideoCodec's plain nested configs ("iframe", "pframe": kwargs dicts) are
    filled too; its "flow" spec is kept as given (it is part of the model id) and filled when the estimator is
    built (gvc.models.flow.build_flow_estimator); nested {"class_path", "config"} sub-models are filled when
    built."""
    out = {**LEGACY_CONFIG.get(class_path, {}), **config}
    if class_path == "gvc.models.video.VideoCodec":
        for key in ("iframe", "pframe"):
            v = out.get(key)
            if isinstance(v, dict) and set(v) != NESTED_KEYS:
                out[key] = with_legacy_values(f"gvc.models.{key}.{key[0].upper()}FrameCodec", v)
    return out


def what_file_is(path) -> str:
    """What a file that is not a readable model file is, in words ("a .gvc bitstream (what `gvc encode`
    writes)", "a text file", "a gvc training checkpoint", ...), for error messages; never loads pickled code."""
    path = Path(path)
    if path.is_dir():
        return "a folder"
    if not path.exists():
        return "missing"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not head:
        return "an empty file"
    if head.startswith(_BITSTREAM_MAGIC):
        return "a .gvc bitstream (what `gvc encode` writes)"
    if head.startswith(b"YUV4MPEG2"):
        return "a Y4M video"
    if head.startswith(b"PK\x03\x04"):
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # weights-only refused: pickled objects, never run here
            return "a PyTorch file holding Python objects (a Lightning checkpoint of another program?)"
        except Exception:  # noqa: BLE001 - torch raises many types for a damaged archive
            return "a damaged or truncated PyTorch file"
        if isinstance(data, dict) and "gvc" in data and "state_dict" in data:
            return "a gvc training checkpoint (`gvc export CKPT -o MODEL.gvcm` writes its model file)"
        if isinstance(data, dict) and ("state_dict" in data or "pytorch-lightning_version" in data):
            return "a training checkpoint of another program"
        return "a PyTorch file without the gvc model file tag"
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "a text file"
        except UnicodeDecodeError as e:
            if e.start < len(head) - 4:  # a cut in the middle of a character at the end is still text
                return f"an unknown binary file (starts with {head[:8]!r})"
            return "a text file"
    return f"an unknown binary file (starts with {head[:8]!r})"


def class_path_of(model: nn.Module) -> str:
    """'module.QualName' of the model's class."""
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _json_text(value, what: str = "model.config", fix: str = "the model class must keep JSON kwargs") -> str:
    """Canonical JSON text (sorted keys, no spaces, no NaN) of a model file entry; ModelFileError if not JSON."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{what} is not plain JSON ({e}); {fix}") from e


def compute_model_id(class_path: str, config_json: str, state_dict: dict) -> str:
    """sha256 hex over the class path, the canonical config JSON and each tensor (sorted by name)."""
    h = hashlib.sha256()
    h.update(b"gvcm-id-v1\0")
    h.update(class_path.encode() + b"\0")
    h.update(config_json.encode() + b"\0")
    for name in sorted(state_dict):
        t = state_dict[name]
        if not isinstance(t, torch.Tensor):
            raise ModelFileError(f"state dict entry {name!r} is a {type(t).__name__}, not a tensor")
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_id(model: nn.Module) -> str:
    """The id of an in-memory model (as its model file would carry it), computed from its current weights; a
    model returned by `load_model_file` carries the id of its file (`gvc_model_id`), checked at load."""
    cached = getattr(model, "gvc_model_id", None)
    if cached is not None:
        return cached
    if not hasattr(model, "config"):
        raise ModelFileError(
            f"{class_path_of(model)} has no `config` (its constructor kwargs); cannot identify it"
        )
    return compute_model_id(class_path_of(model), _json_text(model.config), model.state_dict())


def _check_class_path(class_path, where: str) -> type:
    if not isinstance(class_path, str) or not _CLASS_PATH_RE.match(class_path):
        raise ModelFileError(
            f"{where}: refuses class {class_path!r}: model files may only name classes under gvc.models; {_FIX}"
        )
    module_name, _, cls_name = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelFileError(
            f"{where}: class {class_path} does not exist in this gvc ({e}); the file comes from another gvc "
            "version: use that version or re-export"
        ) from e
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)) or not cls.__module__.startswith(
        ALLOWED_PREFIX
    ):
        raise ModelFileError(f"{where}: {class_path} is not a model class defined in gvc.models; {_FIX}")
    return cls


def build_model(class_path: str, config: dict, where: str = "model file") -> nn.Module:
    """Instantiate `class_path(**config)` (a class under gvc.models only), with the keys an old file lacks filled
    from LEGACY_CONFIG (`with_legacy_values`). Config values that are dicts with
    exactly the keys {"class_path", "config"} are built first, recursively (sub-models such as a VideoCodec's
    I-frame codec); a class with a `from_config(config)` classmethod is built through it instead."""
    cls = _check_class_path(class_path, where)
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: config must be a JSON object, got {type(config).__name__}; {_FIX}")

    def resolve(v):
        if isinstance(v, dict) and set(v) == NESTED_KEYS:
            return build_model(v["class_path"], v["config"], where)
        return v

    config = with_legacy_values(class_path, config)
    try:
        if hasattr(cls, "from_config"):
            return cls.from_config(config)
        return cls(**{k: resolve(v) for k, v in config.items()})
    except ModelFileError:
        raise
    except Exception as e:  # noqa: BLE001 - any constructor failure means the config does not fit the class
        raise ModelFileError(
            f"{where}: config does not fit {class_path} in this gvc ({type(e).__name__}: {e}); {_FIX}"
        ) from e


def save_model_file(path, model: nn.Module, update: bool = True, training: dict | None = None) -> str:
    """Write `model` to `path` (.gvcm); returns its model id (sha256 hex).

    update=True calls `model.update(force=True)` first so the CDF tables match the weights. training: the
    training record (plain JSON; None: the model's own `gvc_training` if it has one, else none). The file is
    written to a temporary name and renamed, so a crash never leaves a half-written model file.
    """
    path = Path(path)
    class_path = class_path_of(model)
    _check_class_path(class_path, str(path))
    if not hasattr(model, "config"):
        raise ModelFileError(
            f"{class_path} has no `config` attribute (its constructor kwargs); cannot save it"
        )
    config_json = _json_text(model.config)
    if update:
        if not hasattr(model, "update"):
            raise ModelFileError(f"{class_path} has no update(); it is not an entropy-coding model")
        model.update(force=True)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    mid = compute_model_id(class_path, config_json, state)
    payload = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "class_path": class_path,
        "config": config_json,
        "state_dict": state,
        "model_id": mid,
        "torch_version": str(torch.__version__),
    }
    if training is None:
        training = getattr(model, "gvc_training", None)
    if training:
        payload["training"] = _json_text(training, "the training record", "keep it to plain values")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports an unwritable file as a RuntimeError
        if tmp.is_file():
            tmp.unlink()
        why = (e.strerror if isinstance(e, OSError) else None) or str(e).strip().splitlines()[0]
        raise ModelFileError(f"{path}: cannot write the model file ({why}); check the folder") from e
    return mid


def read_model_file(path) -> dict:
    """The checked contents of a model file (format, version, class_path, config (dict), state_dict, model_id,
    training (dict, {} when absent)),
    without building the model. Raises ModelFileError naming the file and the fix."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file; {WHAT_A_MODEL_FILE_IS}")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; {WHAT_A_MODEL_FILE_IS}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged or foreign files
        raise ModelFileError(
            f"{path} is {what_file_is(path)}, not a gvc model file; {WHAT_A_MODEL_FILE_IS}"
        ) from e
    if not isinstance(data, dict) or data.get("format") != FORMAT_TAG:
        raise ModelFileError(f"{path} is {what_file_is(path)}, not a gvc model file; {WHAT_A_MODEL_FILE_IS}")
    version = data.get("version")
    if not isinstance(version, int) or version != FORMAT_VERSION:
        hint = "upgrade gvc" if isinstance(version, int) and version > FORMAT_VERSION else _FIX
        raise ModelFileError(
            f"{path}: model file version {version!r}, this gvc reads {FORMAT_VERSION}; {hint}"
        )
    for key, typ in (("class_path", str), ("config", str), ("state_dict", dict), ("model_id", str)):
        if not isinstance(data.get(key), typ):
            raise ModelFileError(f"{path}: model file entry {key!r} is missing or malformed; {_FIX}")
    try:
        config = json.loads(data["config"])
    except ValueError as e:
        raise ModelFileError(f"{path}: model config is not valid JSON ({e}); {_FIX}") from e
    _check_class_path(data["class_path"], str(path))
    mid = compute_model_id(data["class_path"], data["config"], data["state_dict"])
    if mid != data["model_id"]:
        raise ModelFileError(
            f"{path}: content hash {mid[:12]}… differs from the recorded id {data['model_id'][:12]}…: the file was "
            f"modified or damaged; {_FIX}"
        )
    training = data.get("training", "{}")  # files written before the record existed have none
    try:
        training = json.loads(training) if isinstance(training, str) else None
    except ValueError:
        training = None
    if not isinstance(training, dict):
        raise ModelFileError(f"{path}: the training record is malformed; {_FIX}")
    return {**data, "config": config, "training": training}


def load_model_file(path, device: str | torch.device = "cpu") -> nn.Module:
    """Build the model a .gvcm file describes, load its weights and CDF tables, put it in eval mode on `device`.

    The returned module carries `gvc_model_id` (sha256 hex) for the bitstream check and `gvc_training` (the
    training record, {} when the file has none).
    """
    data = read_model_file(path)
    model = build_model(data["class_path"], data["config"], str(path))
    try:
        model.load_state_dict(data["state_dict"], strict=True)
    except (RuntimeError, KeyError, ValueError) as e:
        first = str(e).strip().splitlines()
        raise ModelFileError(
            f"{path}: weights do not match {data['class_path']} built from the stored config "
            f"({' '.join(first[:3])[:400]}); {_FIX}"
        ) from e
    model.eval().requires_grad_(False)
    model.to(device)
    model.gvc_model_id = data["model_id"]
    model.gvc_training = data["training"]
    return model


__all__ = [
    "FORMAT_VERSION",
    "save_model_file",
    "load_model_file",
    "read_model_file",
    "build_model",
    "model_id",
    "compute_model_id",
    "class_path_of",
]
