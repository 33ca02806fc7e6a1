"""Optional training speed-ups (conf/train.yaml `compile`, `channels_last`); measured in benchmarks/bench_compile.py.

- compile: in-place `nn.Module.compile()` (torch.compile with the inductor backend) of the heavy networks of a
  stage, so parameter names and state_dict keys do not change: checkpoints and .gvcm files load without it.
- channels_last: NHWC memory format for the module's 4-D weights and for the frames of each batch.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterable

import torch
from torch import nn

from gvc.errors import ConfigError

# heavy submodules of an IFrameCodec (encoder, generator, hyperprior towers), relative to the codec
IFRAME_CODEC_TARGETS = ("g_a", "g_s", "bottleneck.h_a", "bottleneck.h_s_mean", "bottleneck.h_s_scale")
_PFRAME_PARTS = ("flow_encoder", "flow_generator", "res_encoder", "res_generator")
_PFRAME_TOWERS = tuple(
    f"{b}.{t}" for b in ("flow_bottleneck", "res_bottleneck") for t in ("h_a", "h_s_mean", "h_s_scale")
)
# per stage, relative to the Lightning module; stage 2 also compiles the frozen E_I / G_I (E_I gives y_free of
# every P-frame). A missing (None) submodule, e.g. no discriminator with loss.gan=false, is skipped.
COMPILE_TARGETS = {
    "iframe": (*(f"codec.{n}" for n in IFRAME_CODEC_TARGETS), "discriminator"),
    "pframe": (
        *(f"video.pframe.{n}" for n in _PFRAME_PARTS + _PFRAME_TOWERS),
        "video.iframe.g_a",
        "video.iframe.g_s",
        "discriminator",
    ),
}


def check_compile_support(device_type: str) -> None:
    """Raise ConfigError when torch.compile (inductor) cannot work here: no TorchDynamo for this Python/torch,
    no triton for CUDA, no C++ compiler for CPU. device_type: "cuda" or "cpu"."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise ConfigError(
            f"compile=true: torch.compile is not supported by this torch {torch.__version__} / Python; "
            "set compile=false"
        )
    if device_type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise ConfigError("compile=true on CUDA needs triton (pip install triton); or set compile=false")
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        cxx = get_cpp_compiler()
    except Exception as e:  # inductor raises several types when no compiler is found
        raise ConfigError(
            f"compile=true on CPU needs a C++ compiler (g++) for inductor ({e}); or set compile=false"
        ) from e
    if shutil.which(cxx) is None:
        raise ConfigError(f"compile=true on CPU needs the C++ compiler {cxx!r} on PATH; or set compile=false")


def compile_submodules(root: nn.Module, names: Iterable[str], **compile_kwargs) -> list[str]:
    """`root.get_submodule(name).compile(**compile_kwargs)` in place for each existing name; returns the names
    compiled. State_dict keys are unchanged (no OptimizedModule wrapper)."""
    done = []
    for name in names:
        try:
            sub = root.get_submodule(name)
        except AttributeError:  # e.g. discriminator None
            continue
        sub.compile(**compile_kwargs)
        done.append(name)
    return done


def to_channels_last(batch):
    """Frames (B, 3, H, W) -> channels_last; clips (B, T, 3, H, W) -> laid out (B, T, H, W, 3) in memory so that
    every frame clip[:, t] is channels_last; lists/tuples/dicts recursively; anything else unchanged."""
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 4:
            return batch.contiguous(memory_format=torch.channels_last)
        if batch.dim() == 5:
            return batch.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        return batch
    if isinstance(batch, list | tuple):
        return type(batch)(to_channels_last(b) for b in batch)
    if isinstance(batch, dict):
        return {k: to_channels_last(v) for k, v in batch.items()}
    return batch


def apply_speed_options(module, compile: bool = False, channels_last: bool = False) -> list[str]:
    """Apply conf `channels_last` (module weights now, batches in GVCModule.on_after_batch_transfer) and then
    conf `compile` (COMPILE_TARGETS of the module's stage) to a GVCModule; returns the compiled names."""
    if channels_last:
        module.to(memory_format=torch.channels_last)
        module.channels_last = True
    if not compile:
        return []
    return compile_submodules(module, COMPILE_TARGETS[module.stage_cfg["name"]])


def plain_copy(module: nn.Module) -> nn.Module:
    """A CPU, eval-mode deep copy without compiled forwards (a copied compiled forward would still call the
    original module) and with contiguous (NCHW) weights: what export writes and loads."""
    out = copy.deepcopy(module).cpu().eval()
    for m in out.modules():
        m._compiled_call_impl = None
    return out.to(memory_format=torch.contiguous_format)
