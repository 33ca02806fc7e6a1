"""`self.config` of a model class, derived from its constructor's arguments.

The model classes that conf/ names by `_target_` take keyword-only arguments without defaults (conf/model/*.yaml
is the one place their values live). A model file keeps `config` (JSON) to rebuild the module; it is derived
here from the constructor's signature and the values it was called with, so no class re-lists its arguments.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence


def _plain(value, hint):
    """value coerced to the JSON type its annotation names: int, float, bool, str, a Sequence of int (a list),
    or `X | None` (None kept)."""
    if value is None:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        return _plain(value, args[0])
    if hint in (int, float, bool, str):
        return hint(value)
    if typing.get_origin(hint) in (Sequence, list, tuple) or hint in (Sequence, list, tuple):
        inner = args[0] if args else None
        return [_plain(v, inner) if inner in (int, float, bool, str) else v for v in value]
    return value


def derive_config(init: Callable, arguments: Mapping) -> dict:
    """{name: value} of every keyword-only parameter of `init` (a class's __init__), taken from `arguments`
    (the constructor's `locals()`), each coerced to the JSON type of its annotation (so a model file's config
    and model id do not depend on whether a caller passed 3 or 3.0, a tuple or a list)."""
    hints = typing.get_type_hints(init)
    return {
        name: _plain(arguments[name], hints.get(name))
        for name, p in inspect.signature(init).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }


_DIS_LEGACY = {
    "preset": "medium",
    "finest_scale": None,
    "patch_size": None,
    "patch_stride": None,
    "gradient_descent_iterations": None,
    "variational_refinement_iterations": None,
    "use_spatial_propagation": None,
}
#: The values model files were written under before an option existed, by class path: a key an OLD model
#: file's config lacks is filled with them (gvc.codec.modelfile.build_model; a VideoCodec's flow-estimator spec
#: in gvc.models.flow.build_flow_estimator). They are not defaults for new models (conf/model/*.yaml gives
#: every value), only what an old file means; a config that lacks a key not listed here is refused.
#:   IFrameCodec / PFrameCodec: norm / kernel_size / stem (and the flow codec's flow_*) came with the small
#:     transforms (conf/model/small.yaml); before them every transform was HiFiC's (ChannelNorm, 3x3 stride-2
#:     convs, the 7x7 stem).
#:   PFrameCodec.residual_mapping: "affine" (2g - 1), the mapping before "unit" existed (conf/model/*.yaml).
#:   PFrameCodec.free_latent_grad: true, the gradient through y_free before the switch existed.
#:   VideoCodec.flow_reference: "decoded", the previous reconstruction, before "original" existed.
#:   VideoCodec.checkpoint_pframes: false (training only; no effect on coding).
#:   IFrameCodec / PFrameCodec rate_levels / rate_gain_init: 0 (one rate, no gains; the init is then unused)
#:     before variable-rate coding existed (conf/rate/multi.yaml); rate_gain_hyper: false (no gains on the
#:     hyper-latent z), as variable-rate models were before it existed.
#:   DISFlow / RAFTFlow (a VideoCodec's "flow" spec, kept as given, may hold fewer keys): DIS preset "medium"
#:     with the preset's own parameters; RAFT-small, 12 updates, 128 px.
LEGACY_CONFIG: dict[str, dict] = {
    "gvc.models.iframe.IFrameCodec": {
        "norm": "channel",
        "kernel_size": 3,
        "stem": True,
        "rate_levels": 0,
        "rate_gain_init": [0.5, 2.0],
        "rate_gain_hyper": False,
    },
    "gvc.models.pframe.PFrameCodec": {
        "norm": "channel",
        "kernel_size": 3,
        "stem": True,
        "flow_norm": "channel",
        "flow_kernel_size": 3,
        "flow_stem": True,
        "residual_mapping": "affine",
        "free_latent_grad": True,
        "rate_levels": 0,
        "rate_gain_init": [0.5, 2.0],
        "rate_gain_hyper": False,
    },
    "gvc.models.video.VideoCodec": {"flow_reference": "decoded", "checkpoint_pframes": False},
    "gvc.models.flow.DISFlow": _DIS_LEGACY,
    "gvc.models.flow.RAFTFlow": {"size": "small", "num_flow_updates": 12, "min_size": 128},
}
