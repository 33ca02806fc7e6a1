"""How a frame's latents are coded: the strategy the I-frame and P-frame pipelines are given.

The pipelines (`IFrameCodec.code`, `PFrameCodec.code`, `VideoCodec.step`) are written once; at each latent they
call ``latents.code(name, bottleneck, analysis)`` where `analysis` is a closure computing the latent y from the
frame (the encoder networks). The strategy decides what happens there:

- `TrainLatents(mode, **qparams)`: training / evaluation. y = analysis(); the bottleneck quantizes it with one
  of the modes of `gvc.models.quantization` ("noise", "ste", "round", "softround_kumaraswamy") and returns
  `likelihoods` (the loss term) and `likelihoods_q` (the rounded latents' likelihoods, no gradient: what the
  rate controller reads).
- `EncodeLatents(placement, estimate)`: writing a file. y = analysis() is rounded and entropy-coded; the result
  keeps the strings, the z grid shape and (estimate=True) the rounded latents' likelihoods under the coder's
  scales, so a frame's estimated bits come from the same single pass that makes its strings.
- `RefineLatents()`: encode-time refinement (gvc.codec.refine). The latents become free tensors, quantized
  straight-through, that a few gradient steps move against rate + distortion; `EncodeLatents(given=...)` then
  codes them.
- `DecodeLatents(latents, placement)`: reading a file. The strings of each named latent are decoded; the
  analysis closure is never called (no encoder network, no flow estimator runs).

Every strategy carries the quality level `q` of a variable-rate model (gvc.models.gains: (B,) float or a number,
None for a single-rate model) and hands it to each bottleneck it codes, so one pipeline codes every rate; the
frozen I-frame codec of a VideoCodec is coded at the same q.

`placement` (`gvc.models.bottleneck.EntropyPlacement`, or None for the model's own device) says where the
hyper-synthesis that picks each symbol's CDF runs; encoder and decoder must use the same one (the container
records it).

Latent names: the I-frame codec has one latent named "" (likelihood keys "y", "z"); the P-frame codec codes
"flow" then "res" (keys "flow_y", "flow_z", "res_y", "res_z"). A frame's strings are the latents' [y, z]
strings in coding order, its shapes the latents' z grids in that order: exactly a packet's layout.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import torch

from gvc.models.bottleneck import EntropyPlacement, HyperpriorBottleneck


def likelihood_keys(name: str) -> tuple[str, str]:
    """(y key, z key) of latent `name` in a frame's likelihood dicts: ("y", "z") or ("NAME_y", "NAME_z")."""
    return ("y", "z") if not name else (f"{name}_y", f"{name}_z")


@dataclass
class LatentOut:
    """One coded latent. y_hat: what synthesis sees. likelihoods / likelihoods_q: {"y", "z"} (None when
    decoding, or encoding without the estimate). strings: [y_strings, z_strings] (lists of bytes per batch item)
    and shape: the z grid (h_z, w_z), when a bitstream is written or read."""

    y_hat: torch.Tensor
    likelihoods: dict[str, torch.Tensor] | None = None
    likelihoods_q: dict[str, torch.Tensor] | None = None
    strings: list | None = None
    shape: tuple[int, int] | None = None


class CodedLatents:
    """What a pipeline collects while it codes a frame's latents, in coding order: the merged likelihood dicts
    (keys from `likelihood_keys`) and, when a bitstream is written or read, the strings and z grids. Local to
    one `code` call; `fields()` hands its contents, read-only, to the frame's `FrameOut`."""

    def __init__(self):
        self.likelihoods: dict[str, torch.Tensor] = {}
        self.likelihoods_q: dict[str, torch.Tensor] = {}
        self.strings: list = []
        self.shapes: list[tuple[int, int]] = []

    def add(self, name: str, lat: LatentOut) -> LatentOut:
        """Record latent `name` (after the ones added before it); returns `lat`."""
        ky, kz = likelihood_keys(name)
        if lat.likelihoods is not None:
            self.likelihoods.update({ky: lat.likelihoods["y"], kz: lat.likelihoods["z"]})
        if lat.likelihoods_q is not None:
            self.likelihoods_q.update({ky: lat.likelihoods_q["y"], kz: lat.likelihoods_q["z"]})
        if lat.strings is not None:
            self.strings.extend(lat.strings)
            self.shapes.append(tuple(int(d) for d in lat.shape))
        return lat

    def fields(self) -> dict:
        """FrameOut's likelihoods, likelihoods_q (read-only mappings), strings and shapes (tuples)."""
        return {
            "likelihoods": MappingProxyType(dict(self.likelihoods)),
            "likelihoods_q": MappingProxyType(dict(self.likelihoods_q)),
            "strings": tuple(self.strings),
            "shapes": tuple(self.shapes),
        }


_EMPTY: Mapping[str, torch.Tensor] = MappingProxyType({})


@dataclass(frozen=True)
class FrameOut:
    """One coded frame, as the pipelines return it (`IFrameCodec.code`, `PFrameCodec.code`, `VideoCodec.step`).

    Frozen: nothing changes a FrameOut after it is returned; a caller that needs another view of it (e.g. x_hat
    cropped to the source size, `cropped`) gets a new one from `replace`.

    Always: frame_type ("I" / "P"); x_hat (B, 3, H, W) on the [0, 1] scale (not clamped when training, clamped
    to [0, 1] when a bitstream is written or read; None from an encode pass without synthesis); likelihoods and
    likelihoods_q (read-only {key: likelihood tensor} merged over the latents, keys from `likelihood_keys`;
    empty when decoding or encoding without the estimate); strings (flat tuple in packet order: [y, z] per
    latent, each a list of bytes per batch item) and shapes (z grids (h_z, w_z) in packet order), empty
    unless a bitstream is written or read; shift: the residual roll applied (pixels, (0, 0) for I-frames).
    I-frames: y_hat (B, C, h, w). P-frames: prediction (B, 3, H, W), y_flow_hat (None with the oracle flow),
    flow_hat (B, 2, H, W, pixels), sigma (B, 1, H, W, pixels), y_res_hat, y_free (None without the free
    latent), d_latent (D_P's condition; these three None in the flow warm-up) and flow_ref (B, 2, H, W,
    pixels, the frozen estimator's flow; None without the flow input or when decoding).

    `out[key]` reads a field (read-only, for callers written against the older dict); new code reads attributes.
    """

    frame_type: str
    x_hat: torch.Tensor | None
    likelihoods: Mapping[str, torch.Tensor] = field(default_factory=lambda: _EMPTY)
    likelihoods_q: Mapping[str, torch.Tensor] = field(default_factory=lambda: _EMPTY)
    strings: tuple = ()
    shapes: tuple[tuple[int, int], ...] = ()
    shift: tuple[int, int] = (0, 0)
    y_hat: torch.Tensor | None = None
    prediction: torch.Tensor | None = None
    y_flow_hat: torch.Tensor | None = None
    flow_hat: torch.Tensor | None = None
    sigma: torch.Tensor | None = None
    y_res_hat: torch.Tensor | None = None
    y_free: torch.Tensor | None = None
    d_latent: torch.Tensor | None = None
    flow_ref: torch.Tensor | None = None

    def __getitem__(self, key: str):
        if key not in _FRAME_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def replace(self, **changes) -> FrameOut:
        """A new FrameOut with `changes` (field=value); this one is unchanged."""
        return dataclasses.replace(self, **changes)

    def cropped(self, height: int, width: int) -> FrameOut:
        """x_hat cropped to the top-left height x width pixels (the source size before padding)."""
        return self.replace(x_hat=self.x_hat[..., :height, :width])

    def estimated_bits(self) -> float | None:
        """sum of -log2 likelihoods of the rounded latents (bits), or None when they were not computed."""
        lik = self.likelihoods_q
        if not lik:
            return None
        return float(sum(-torch.log2(v.detach().double()).sum() for v in lik.values()))

    def payload_bits(self) -> int:
        """8 x the bytes of the entropy-coded strings (batch size 1 or all items), 0 when none were written."""
        return 8 * sum(len(s) for per_item in self.strings for s in per_item)


_FRAME_FIELDS = frozenset(f.name for f in dataclasses.fields(FrameOut))


Analysis = Callable[[], torch.Tensor]


class LatentCoding(ABC):
    """Strategy: how a pipeline's latents are coded (see the module docstring)."""

    #: the quality level of a variable-rate model ((B,) float tensor or a number), None for a single rate
    q = None

    #: whether the frame is available (training, encoding): the pipeline may run encoder-side code
    encodes: bool = True
    #: whether a bitstream is written or read (reconstructions are then clamped to [0, 1], as decoded)
    bitstream: bool = True
    #: whether a frozen codec (VideoCodec's I-frame codec) is coded without autograd (False: refinement)
    frozen_no_grad: bool = True

    def for_frozen(self) -> LatentCoding:
        """The strategy for a frozen codec (no gradient): coded as the decoder will; itself by default."""
        return self

    @abstractmethod
    def code(self, name: str, bottleneck: HyperpriorBottleneck, analysis: Analysis) -> LatentOut:
        """Code latent `name` of `bottleneck`; `analysis()` computes y (called at most once)."""


class TrainLatents(LatentCoding):
    """Quantize with `mode` (gvc.models.quantization.MODES; qparams: temperature, kumaraswamy_a) at level q."""

    bitstream = False

    def __init__(self, mode: str = "noise", q=None, **qparams):
        self.mode = mode
        self.q = q
        self.qparams = qparams

    def for_frozen(self) -> TrainLatents:
        """A frozen codec is coded as the decoder will: mode "round", the same q."""
        return TrainLatents("round", q=self.q)

    def code(self, name: str, bottleneck: HyperpriorBottleneck, analysis: Analysis) -> LatentOut:
        out = bottleneck(analysis(), mode=self.mode, q=self.q, **self.qparams)
        return LatentOut(out["y_hat"], out["likelihoods"], out["likelihoods_q"])


class RefineLatents(LatentCoding):
    """Encode-time refinement (gvc.codec.refine): each latent y is a free leaf tensor the refiner optimises.

    The first pass through a pipeline takes y from the analysis (the encoder's latents) and keeps it in `y`
    ({name: (B, C, h, w) tensor with requires_grad}); later passes reuse it, so the analysis and the flow
    estimator run once (`encodes` is False from the second pass on). Quantized as the file will be (mode
    "ste": rounded forward values, identity gradient), so the distortion seen is the decoder's; likelihoods are
    the rounded latents' (the rate term, with gradient) and likelihoods_q those under the coder's scales. The
    frozen I-frame codec of a VideoCodec is coded with gradient (its latents are refined too).
    """

    bitstream = False
    frozen_no_grad = False

    def __init__(self, q=None):
        self.y: dict[str, torch.Tensor] = {}
        self.q = q

    @property
    def encodes(self) -> bool:  # type: ignore[override]
        return not self.y

    def for_frozen(self) -> RefineLatents:
        return self

    def code(self, name: str, bottleneck: HyperpriorBottleneck, analysis: Analysis) -> LatentOut:
        if name not in self.y:
            self.y[name] = analysis().detach().float().clone().requires_grad_(True)
        out = bottleneck(self.y[name], mode="ste", q=self.q)
        return LatentOut(out["y_hat"], out["likelihoods"], out["likelihoods_q"])


class EncodeLatents(LatentCoding):
    """Round and entropy-code; keep strings, shapes and (estimate) the rounded latents' likelihoods.

    given: {name: y} latents to code instead of the analysis' (the refined latents of RefineLatents): the
    analysis of those names is not called."""

    def __init__(
        self,
        placement: EntropyPlacement | None = None,
        estimate: bool = True,
        given: Mapping[str, torch.Tensor] | None = None,
        q=None,
    ):
        self.placement = placement
        self.estimate = bool(estimate)
        self.given = dict(given or {})
        self.q = q

    def code(self, name: str, bottleneck: HyperpriorBottleneck, analysis: Analysis) -> LatentOut:
        y = self.given[name].detach() if name in self.given else analysis()
        out = bottleneck.compress(y, placement=self.placement, likelihoods=self.estimate, q=self.q)
        lik = out.get("likelihoods")
        return LatentOut(out["y_hat"], lik, lik, out["strings"], tuple(out["shape"]))


class DecodeLatents(LatentCoding):
    """Decode each named latent from its strings; the analysis closure is never called.

    latents: {name: ([y_strings, z_strings], (h_z, w_z))}, or a frame's flat strings and shapes in packet order
    via `from_packet`.
    """

    encodes = False

    def __init__(
        self,
        latents: Mapping[str, tuple[Sequence, Sequence[int]]],
        placement: EntropyPlacement | None = None,
        q=None,
    ):
        self.latents = dict(latents)
        self.placement = placement
        self.q = q

    @classmethod
    def from_packet(
        cls,
        names: Sequence[str],
        strings: Sequence,
        shapes: Sequence,
        placement: EntropyPlacement | None = None,
        q=None,
    ) -> DecodeLatents:
        """names in coding order; strings: 2 per latent ([y, z] each a list of bytes per batch item); shapes:
        one z grid per latent."""
        if len(strings) != 2 * len(names) or len(shapes) != len(names):
            raise ValueError(
                f"{len(names)} latents need {2 * len(names)} string lists and {len(names)} shapes, got "
                f"{len(strings)} and {len(shapes)}"
            )
        return cls(
            {n: (list(strings[2 * i : 2 * i + 2]), tuple(shapes[i])) for i, n in enumerate(names)},
            placement,
            q,
        )

    def code(self, name: str, bottleneck: HyperpriorBottleneck, analysis: Analysis) -> LatentOut:
        if name not in self.latents:
            raise ValueError(f"no strings for latent {name!r} (have {sorted(self.latents)})")
        strings, shape = self.latents[name]
        out = bottleneck.decompress(list(strings), tuple(shape), placement=self.placement, q=self.q)
        return LatentOut(out["y_hat"], strings=list(strings), shape=tuple(shape))


__all__ = [
    "CodedLatents",
    "DecodeLatents",
    "EncodeLatents",
    "FrameOut",
    "LatentCoding",
    "LatentOut",
    "RefineLatents",
    "TrainLatents",
    "likelihood_keys",
]
