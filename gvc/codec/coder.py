"""Encode a video to a .gvc file and decode it back.

Frames are read as 8-bit YUV 4:2:0 by :mod:`gvc.data.io` and converted to RGB float (3, H, W) in [0, 1] with the
source's colour convention (default BT.709 full range), padded on the right/bottom by edge replication to a
multiple of the model's `size_multiple` (64), coded, and cropped back on decode. The container header records
the source size, the padded size, the frame rate and the colour convention, so the decoder needs only the .gvc
file and the model file, and writes its output in the source's convention.

Models: one frame coder (`FrameCoder`) for every model, one GOP state carried over the frames, each frame
through the model's own pipeline with EncodeLatents / DecodeLatents (gvc.models.latents):
- video models (a `gvc.models.video.VideoCodec`): low delay, an I-frame every `gop` frames (gop <= 0 or None:
  only the first), P-frames predicted from the previous *decoded* frame, through `VideoCodec.step`, the same
  step training unrolls: the encoder's step returns the strings, the decoder's reconstruction (so both stay in
  lock step) and the bit estimate in one pass, and the decoder's step runs no encoder network and no flow
  estimator. The residual branch's random shift is derived from the frame index (:func:`shift_for_frame`) and
  also stored in the packet (2 bytes).
- intra-only models (an `IFrameCodec`): GOP 1, every frame an I-frame through `IFrameCodec.code`.

Variable-rate models (rate_levels >= 2, gvc.models.gains) code each frame at a quality level q in
[0, rate_levels - 1] (continuous q allowed), rounded to the packet's grid (`quantize_quality`, 1/256 of a level)
and written in every packet, so the decoder needs no option; `encode_video(quality=q)` fixes it for the clip,
gvc.codec.target_rate finds the q that gives a requested file bpp.

Encode-time refinement (`refiner`, gvc.codec.refine): before a frame is coded, its latents may be moved by a
few gradient steps against the frame's rate + distortion, through the same `step` on a copy of the GOP state
(so with the decoder's reference frame); the coded latents are then the refined ones and nothing changes for
the decoder.

Determinism (docs/ARCHITECTURE.md, "A frame's path"):
- Same bytes: the same input, model file, torch build and device kind give the same .gvc bytes on every run.
  Coding runs in eval mode, float32, under `torch.use_deterministic_algorithms(True)` (warn only) with cuDNN
  benchmarking and TF32 off (settings restored afterwards). The DIS flow estimator (encoder only) is
  deterministic too.
- Same symbols everywhere: the CDF tables come from the model file (never recomputed), and by default
  (`portable_entropy=True`, flagged in the header) every hyperprior's entropy parameters (h_s -> means, scales,
  which select each symbol's CDF) are computed on the CPU in float32 with one thread: the explicit
  `EntropyPlacement` (:func:`entropy_placement`) that the encode and decode strategies hand to every bottleneck. So a file decodes to the same latents on any device and core count
  (GPU encode -> CPU decode included) given the same torch build and CPU instruction set. Across different CPU
  instruction sets or torch builds float32 convolutions may round differently; a scale that lands within an
  ulp of a scale-table boundary would then pick another CDF and corrupt the rest of that frame: not guaranteed.
  `portable_entropy=False` keeps h_s on the model's device (faster on a GPU); such files decode correctly only on
  the same kind of device with the same thread count.
- Same frames: decoding the same file twice in one setting gives bit-identical frames. The synthesis networks
  run on the model's device with its thread count, so across devices or thread counts the pixels may differ at
  float rounding level (measured: <= 6e-6 on [0, 1] after 8 frames of P-frame recursion, 1 vs 2 CPU threads;
  P-frames stay in sync because their symbols do not depend on the reference frame's exact values).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gvc.codec.bitstream import (
    MAX_QUALITY,
    BitstreamReader,
    BitstreamWriter,
    FramePacket,
    StreamHeader,
    check_model,
    open_bitstream,
    quantize_quality,
)
from gvc.codec.modelfile import model_id as compute_model_id
from gvc.errors import BitstreamError, GVCError, ModelFileError
from gvc.models.bottleneck import EntropyPlacement
from gvc.models.iframe import IFrameCodec
from gvc.models.latents import DecodeLatents, EncodeLatents, FrameOut, LatentCoding
from gvc.models.pframe import PFrameCodec
from gvc.models.shift import shift_for_frame
from gvc.models.video import GOPState, VideoCodec

#: padding multiple when a model does not state its own `size_multiple`
DEFAULT_SIZE_MULTIPLE = 64
#: intra-op threads of the portable entropy-parameter computation (part of the format's determinism contract)
ENTROPY_THREADS = 1


# ------------------------------------------------------------------------------------------------ helpers


def size_multiple(model: nn.Module) -> int:
    """The multiple frame sizes are padded to for `model` (its `size_multiple`, default 64)."""
    m = int(getattr(model, "size_multiple", DEFAULT_SIZE_MULTIPLE))
    if m < 1:
        raise ModelFileError(f"model reports size_multiple {m}")
    return m


def padded_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    """(width, height) rounded up to `multiple`."""
    return -(-width // multiple) * multiple, -(-height // multiple) * multiple


def pad_frame(x: torch.Tensor, padded_w: int, padded_h: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, padded_h, padded_w) by replicating the right column / bottom row."""
    h, w = x.shape[-2:]
    if (h, w) == (padded_h, padded_w):
        return x
    return F.pad(x, (0, padded_w - w, 0, padded_h - h), mode="replicate")


def rate_levels(model: nn.Module) -> int:
    """The model's trained quality levels (0: a single-rate model)."""
    return int(getattr(model, "rate_levels", 0) or 0)


def check_quality(model: nn.Module, quality: float | None) -> float | None:
    """The quality level a frame is coded at: q on the packet's grid for a variable-rate model (GVCError when
    missing or outside [0, rate_levels - 1]), None for a single-rate model (GVCError when one is given)."""
    levels = rate_levels(model)
    if not levels:
        if quality is not None:
            raise GVCError(
                "this model codes one rate: --q / --bpp need a variable-rate model (trained with rate=multi)"
            )
        return None
    if quality is None:
        raise GVCError(
            f"this model codes {levels} rate levels: choose one with --q Q (0 .. {levels - 1}, fractions allowed) "
            "or a target file rate with --bpp B"
        )
    q = quantize_quality(quality)
    if not 0 <= q <= min(levels - 1, MAX_QUALITY):
        raise GVCError(f"--q {quality}: this model's quality levels are 0 .. {levels - 1}")
    return q


def is_video_model(model: nn.Module) -> bool:
    """True for models with P-frames (a VideoCodec), False for intra-only codecs."""
    return isinstance(model, VideoCodec)


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _model_id_bytes(model: nn.Module) -> bytes:
    try:
        return bytes.fromhex(compute_model_id(model))
    except ValueError as e:
        raise ModelFileError(f"model id {compute_model_id(model)!r} is not hex") from e


def _flatten_strings(strings) -> list[bytes]:
    """Model strings (lists of per-batch-item bytes, batch size 1, possibly nested) -> flat list of bytes."""
    out: list[bytes] = []
    for s in strings:
        if isinstance(s, bytes | bytearray):
            out.append(bytes(s))
        elif isinstance(s, list | tuple) and len(s) == 1 and isinstance(s[0], bytes | bytearray):
            out.append(bytes(s[0]))
        else:
            raise GVCError(f"unexpected entropy-coded strings from the model: {type(s).__name__}")
    return out


def _shape_tuple(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


@contextlib.contextmanager
def deterministic():
    """Deterministic torch kernels (warn only), no cuDNN benchmarking, no TF32; previous settings restored."""
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev[4], prev[5]


def entropy_placement(portable: bool) -> EntropyPlacement | None:
    """Where the hyper-synthesis that picks each symbol's CDF runs for a stream: portable (the header's
    `portable_entropy`): CPU, float32, ENTROPY_THREADS threads, whatever the model's device; else None (the
    model's own device and thread count). A fresh placement per encode / decode (it caches copies of h_s)."""
    return EntropyPlacement("cpu", torch.float32, ENTROPY_THREADS) if portable else None


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _progress(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------------ frame coders


class FrameCoder:
    """The one frame coder of `encode_video` and `DecodedVideo`, for every model: frames are coded in order, each
    through the model's own pipeline with one `GOPState` carried over the frames.

    - a `VideoCodec`: `VideoCodec.step`, low delay with I-frame period `gop` (<= 0: only the first frame);
    - an intra-only `IFrameCodec`: the GOP-1 case, every frame an I-frame through `IFrameCodec.code` (an encode
      pass skips the synthesis: no later frame is predicted from it).

    `encode(x, estimate, given)` writes frame `state.index` (EncodeLatents) and returns its packet and bit
    estimate; `decode(packet, padded_w, padded_h)` reads one (DecodeLatents); `pipeline(x)` runs the frame with
    any strategy on a copy of the state (the refiner). Packets: I-frames strings [y, z] and one z grid
    (h_z, w_z); P-frames [flow_y, flow_z, res_y, res_z], z grids [flow, res] and the residual shift.
    """

    def __init__(
        self,
        model: nn.Module,
        placement: EntropyPlacement | None,
        gop: int | None = 0,
        quality: float | None = None,
    ):
        if isinstance(model, VideoCodec):
            self._step = model.step
            #: per frame type: (latent names in packet order, the codec whose grid the latents have)
            self.kinds = {"I": (("",), model.iframe), "P": (PFrameCodec.LATENTS, model.pframe)}
            period = 0 if gop is None else int(gop)
            self.period = int(model.shift_period)
        elif isinstance(model, IFrameCodec):
            self._step = self._intra_step
            self.kinds = {"I": (("",), model)}
            period, self.period = 1, 1
        else:
            raise ModelFileError(
                f"{type(model).__name__} cannot code frames (not an IFrameCodec or VideoCodec)"
            )
        self.model = model
        self.placement = placement
        self.state = GOPState(period=period)
        #: the encoder's quality level (`check_quality`: None for a single-rate model); the decoder reads each
        #: packet's
        self.quality = quality
        self.levels = rate_levels(model)

    def _intra_step(self, x: torch.Tensor | None, state: GOPState, latents: LatentCoding) -> FrameOut:
        """GOP 1: `IFrameCodec.code` and the state's next index (no reference: every frame is an I-frame)."""
        out = self.model.code(x, latents, synthesize=not (latents.bitstream and latents.encodes))
        state.advance(None)
        return out

    def pipeline(self, x: torch.Tensor):
        """run(latents) -> FrameOut: frame `state.index` (x (1, 3, H_pad, W_pad) in [0, 1]) through the model's
        pipeline on a copy of the state (the coder's own state does not move; for the refiner)."""
        return lambda latents: self._step(x, dataclasses.replace(self.state), latents)

    def encode(self, x: torch.Tensor, estimate: bool, given=None) -> tuple[FramePacket, float | None]:
        """x (1, 3, H_pad, W_pad) in [0, 1] -> (packet, estimated bits or None) of frame `state.index`; the
        estimate comes from the same pass as the strings; the state moves on to the next frame. given: refined
        latents {name: y} to code instead of the encoder's."""
        index = self.state.index
        out = self._step(x, self.state, EncodeLatents(self.placement, estimate, given, q=self.quality))
        packet = FramePacket(
            out.frame_type,
            index,
            tuple(_flatten_strings(out.strings)),
            tuple(_shape_tuple(s) for s in out.shapes),
            tuple(int(s) for s in out.shift),
            quality=self.quality,
        )
        _check_shapes(packet, self._expected(packet.frame_type, x.shape[-1], x.shape[-2]), "encoder")
        return packet, out.estimated_bits()

    def _expected(self, frame_type: str, padded_w: int, padded_h: int) -> list[tuple[int, int]]:
        """z shapes of a frame: one grid per latent of its codec."""
        names, part = self.kinds[frame_type]
        return [_z_shape(part, padded_w, padded_h)] * len(names)

    def decode(self, packet: FramePacket, padded_w: int, padded_h: int) -> torch.Tensor:
        """-> x_hat (1, 3, H_pad, W_pad) in [0, 1]; a P-frame's reference is the previous decoded frame."""
        i, ft = packet.index, packet.frame_type
        if ft not in self.kinds:
            raise BitstreamError(
                f"frame {i}: {ft}-frame for an intra-only model, which codes only I-frames: was it encoded with "
                "this kind of model?"
            )
        names = self.kinds[ft][0]
        if len(packet.strings) != 2 * len(names) or len(packet.shapes) != len(names):
            raise BitstreamError(
                f"frame {i}: {ft}-frame with {len(packet.strings)} strings and {len(packet.shapes)} shapes "
                f"(expected {2 * len(names)} and {len(names)}): corrupted file or another model"
            )
        if ft == "P":
            if self.state.ref is None:
                raise BitstreamError(f"frame {i}: P-frame without a reference frame: corrupted file")
            if not all(0 <= s < self.period for s in packet.shift):
                raise BitstreamError(
                    f"frame {i}: shift {packet.shift} outside [0, {self.period}): corrupted file"
                )
        _check_shapes(packet, self._expected(ft, padded_w, padded_h), "decoder")
        q = packet.quality
        if (q is None) != (not self.levels) or (q is not None and q > self.levels - 1):
            have = "no quality level" if q is None else f"quality level {q:g}"
            raise BitstreamError(
                f"frame {i}: {have} for a model with {self.levels or 'no'} rate levels: corrupted file"
            )
        latents = DecodeLatents.from_packet(
            names, [[s] for s in packet.strings], packet.shapes, self.placement, q
        )
        self.state.index = i
        self.state.frame_type = ft
        self.state.shift = tuple(packet.shift) if ft == "P" else None
        return self._step(None, self.state, latents).x_hat


def _check_shapes(packet: FramePacket, expected: list[tuple[int, int]], where: str) -> None:
    """The latent shapes a packet declares must be those of the padded frame: checked before decoding, so a
    forged shape cannot make the decoder allocate latents of any size."""
    got = [tuple(s) for s in packet.shapes]
    if got != expected:
        raise BitstreamError(
            f"{where}: frame {packet.index} declares latent shapes {got}, the coded size implies {expected}: "
            "corrupted file or another model"
        )


def _z_shape(model: nn.Module, padded_w: int, padded_h: int) -> tuple[int, int]:
    m = size_multiple(model)
    return padded_h // m, padded_w // m


# ------------------------------------------------------------------------------------------------ encode


@dataclass
class FrameStats:
    """One coded frame: type, bytes in the file (packet incl. container fields), its bits, and the estimate
    (-log2 likelihoods, bits) where computed."""

    index: int
    frame_type: str
    bytes: int
    payload_bytes: int
    estimated_bits: float | None = None
    #: encode-time refinement of this frame (gvc.codec.refine.FrameRefinement as a dict), None when off
    refine: dict | None = None

    @property
    def bits(self) -> int:
        return 8 * self.bytes


@dataclass
class EncodeStats:
    """Result of encode_video. bpp = 8 * file bytes / (frames * width * height) of the source (docs/METHOD.md section 8.1);
    estimated_bpp from likelihoods (None if not computed); overhead = container header/packet fields."""

    path: str
    width: int
    height: int
    padded_width: int
    padded_height: int
    fps: float
    model_id: str
    file_bytes: int = 0
    frames: list[FrameStats] = field(default_factory=list)
    seconds: float = 0.0
    #: the quality level every frame was coded at (variable-rate models), None for a single-rate model
    quality: float | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def bpp(self) -> float:
        return 8 * self.file_bytes / max(1, self.num_frames * self.width * self.height)

    @property
    def estimated_bits(self) -> float | None:
        ests = [f.estimated_bits for f in self.frames]
        return None if not ests or any(e is None for e in ests) else float(sum(ests))

    @property
    def estimated_bpp(self) -> float | None:
        e = self.estimated_bits
        return None if e is None else e / max(1, self.num_frames * self.width * self.height)

    @property
    def payload_bytes(self) -> int:
        return sum(f.payload_bytes for f in self.frames)

    @property
    def container_bytes(self) -> int:
        """Bytes that are not entropy-coded strings (header, packet lengths/types/shapes/CRCs)."""
        return self.file_bytes - self.payload_bytes

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(
            num_frames=self.num_frames,
            bpp=self.bpp,
            estimated_bits=self.estimated_bits,
            estimated_bpp=self.estimated_bpp,
            payload_bytes=self.payload_bytes,
            container_bytes=self.container_bytes,
        )
        return d


def encode_video(
    source,
    model: nn.Module,
    out,
    gop: int | None = None,
    frames: int | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    matrix: str = "bt709",
    full_range: bool = True,
    estimate: bool = True,
    progress: bool = False,
    portable_entropy: bool = True,
    refiner=None,
    quality: float | None = None,
) -> EncodeStats:
    """Encode a video into a .gvc file.

    source: a path (any format gvc.data.io reads; width/height/fps for raw .yuv, matrix/full_range set the
    YUV -> RGB convention) or an open VideoReader (its own colour settings are used). model: an intra-only codec
    or a VideoCodec, with entropy CDFs built (loaded from a model file, or `update()` called); it runs on its
    own device. out: a path or a writable binary file object (written packet by packet; a non-seekable one gets a
    stream with the frame count left unknown). gop: I-frame period for video models (None/<= 0: only the first
    frame); intra-only models code every frame as I. frames: code only the first N frames. estimate: also
    keep the likelihood estimate of each frame's bits (from the encoding pass itself). portable_entropy: compute
    the entropy parameters on the CPU with one thread (`entropy_placement`; recorded in the header, the decoder
    follows it); False runs them on the model's device (faster on a GPU; decode on the same kind of device with
    the same thread count). refiner: a gvc.codec.refine.LatentRefiner (encode-time latent refinement; None:
    the encoder's latents are coded); each frame's FrameStats.refine then reports it. quality: the quality
    level q of a variable-rate model (required for one, refused for a single-rate model; `check_quality`), the
    same for every frame. Returns EncodeStats (its `quality` the q coded, on the packet grid).
    """
    from gvc.data.io import VideoReader, open_video

    own_reader = not isinstance(source, VideoReader)
    reader = (
        open_video(source, width=width, height=height, fps=fps, matrix=matrix, full_range=full_range)
        if own_reader
        else source
    )
    try:
        q = check_quality(model, quality)
        if q is not None and refiner is not None:
            raise GVCError("--refine-steps is not available for variable-rate models")
        return _encode(reader, model, out, gop, frames, estimate, progress, portable_entropy, refiner, q)
    finally:
        if own_reader:
            reader.close()


def coded_gop(model: nn.Module, gop: int | None) -> int:
    """The I-frame period a stream records: `gop` (None / <= 0: 0, only the first frame) for a video model, 1 (all
    intra) for an intra-only model."""
    if not is_video_model(model):
        return 1
    return 0 if gop is None or gop <= 0 else int(gop)


def start_stream(
    reader, model: nn.Module, out, gop: int, portable_entropy: bool, quality: float | None
) -> tuple[StreamHeader, EncodeStats]:
    """The header of a stream of `reader`'s frames coded by `model` (I-frame period `gop` as `coded_gop` gives it)
    and the EncodeStats to fill while its packets are written to `out`."""
    pw, ph = padded_size(reader.width, reader.height, size_multiple(model))
    mid = _model_id_bytes(model)
    fnum, fden = StreamHeader.fps_fraction(reader.fps)
    header = StreamHeader(
        model_id=mid[:16],
        width=reader.width,
        height=reader.height,
        padded_width=pw,
        padded_height=ph,
        fps_num=fnum,
        fps_den=fden,
        matrix=_matrix_name(reader.matrix),
        full_range=bool(reader.full_range),
        frame_count=None,
        gop=gop,
        portable_entropy=bool(portable_entropy),
        sample_aspect=getattr(reader, "sample_aspect", None),
        chroma_tag=getattr(reader, "chroma_tag", None),  # a Y4M's chroma siting, written back on decode
    )
    header.validate()
    name = str(out) if not hasattr(out, "write") else getattr(out, "name", "<stream>")
    stats = EncodeStats(name, reader.width, reader.height, pw, ph, header.fps, mid.hex(), quality=quality)
    return header, stats


def _encode(
    reader, model, out, gop, frames, estimate, progress, portable_entropy, refiner, quality=None
) -> EncodeStats:
    n = len(reader) if frames is None else min(int(frames), len(reader))
    if n <= 0:
        raise GVCError(f"{reader.path}: nothing to encode ({len(reader)} frames, --frames {frames})")
    gop_h = coded_gop(model, gop)
    coder = FrameCoder(model, entropy_placement(portable_entropy), gop_h, quality)
    header, stats = start_stream(reader, model, out, gop_h, portable_entropy, quality)
    pw, ph = header.padded_width, header.padded_height
    device = _model_device(model)

    def coded(bar) -> Iterator[tuple[FramePacket, float | None, dict | None]]:
        for rgb in reader.iter_rgb(0, n):
            src = rgb.to(device=device, dtype=torch.float32)[None]
            x = pad_frame(src, pw, ph)
            given, report = refiner.refine(coder.pipeline(x), src) if refiner else (None, None)
            packet, est = coder.encode(x, estimate, given)
            yield packet, est, None if report is None else asdict(report)
            bar.update(1)

    with deterministic(), eval_mode(model), _progress(n, "encode", progress) as bar:
        return _write_stream(out, header, stats, coded(bar), n, reader.path)


def write_packets(
    reader, model: nn.Module, out, packets, gop: int | None, portable_entropy: bool, quality: float | None
) -> EncodeStats:
    """Write a .gvc file of packets already coded by `model` (at `quality`, with I-frame period `gop`) for the
    first len(packets) frames of `reader`: packets [(FramePacket, estimated bits or None)] in frame order.
    What gvc.codec.target_rate does with a probe that coded the whole clip."""
    header, stats = start_stream(reader, model, out, coded_gop(model, gop), portable_entropy, quality)
    items = ((packet, est, None) for packet, est in packets)
    return _write_stream(out, header, stats, items, len(packets), reader.path)


def _write_stream(out, header: StreamHeader, stats: EncodeStats, items, n: int, source) -> EncodeStats:
    """Write `header` and the packets of `items` ((packet, estimated bits, refinement report) per frame) to `out`
    (a path: under a temporary name, renamed when complete; or a writable file object); fills `stats`."""
    t0 = time.perf_counter()
    own_file = not hasattr(out, "write")
    if own_file:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(out) + ".part")
        f = open(tmp, "wb")  # noqa: SIM115 - closed below
    else:
        f = out
    ok = False
    try:
        writer = BitstreamWriter(f, header)
        for i, (packet, est, report) in enumerate(items):
            nbytes = writer.write_packet(packet)
            stats.frames.append(FrameStats(i, packet.frame_type, nbytes, packet.payload_bytes, est, report))
        if len(stats.frames) != n:
            raise GVCError(f"{source}: read {len(stats.frames)} of {n} frames")
        writer.close()
        stats.file_bytes = writer.bytes_written
        ok = True
    finally:
        if own_file:
            f.close()
            if ok:
                tmp.replace(out)
            else:
                tmp.unlink(missing_ok=True)
    stats.seconds = time.perf_counter() - t0
    assert stats.file_bytes == len(header.to_bytes()) + sum(fr.bytes for fr in stats.frames)
    return stats


def _matrix_name(matrix: str) -> str:
    key = str(matrix).lower().replace(".", "").replace("-", "").replace("_", "")
    if key not in ("bt709", "bt601"):
        raise GVCError(f"colour matrix {matrix!r} cannot be recorded in a .gvc file: use bt709 or bt601")
    return key


# ------------------------------------------------------------------------------------------------ decode


class DecodedVideo:
    """Iterable of decoded frames, float RGB (3, H, W) in [0, 1] on the CPU, cropped to the source size.

    Attributes from the stream header: `header`, `width`, `height`, `fps`, `matrix`, `full_range` (the colour
    convention to write output files in), `len()` = frame count (when the header knows it). The model check is
    done on construction; frames are decoded lazily, one at a time, as they are iterated.
    """

    def __init__(self, source, model: nn.Module, progress: bool = False, model_name: str = "the model"):
        self.source = source
        self.model = model
        self.progress = progress
        if hasattr(source, "read"):
            self._reader = BitstreamReader(source, getattr(source, "name", "<stream>"))
            self.header = self._reader.header
        else:
            self._reader = None
            with open_bitstream(source) as r:
                self.header = r.header
        self.name = str(getattr(source, "name", source))
        check_model(self.header, _model_id_bytes(model), self.name, model_name)
        mult = size_multiple(model)
        h = self.header
        if (
            h.padded_width % mult
            or h.padded_height % mult
            or h.padded_width - h.width >= mult
            or (h.padded_height - h.height >= mult)
        ):
            raise BitstreamError(
                f"{self.name}: padded size {h.padded_width}x{h.padded_height} for {h.width}x{h.height} does not fit "
                f"the model's multiple {mult}: corrupted file"
            )
        self._iterated = False

    width = property(lambda self: self.header.width)
    height = property(lambda self: self.header.height)
    fps = property(lambda self: self.header.fps)
    matrix = property(lambda self: self.header.matrix)
    full_range = property(lambda self: self.header.full_range)

    def __len__(self) -> int:
        if self.header.frame_count is None:
            raise TypeError("frame count unknown (stream still being written)")
        return self.header.frame_count

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self._reader is not None:
            if self._iterated:
                raise GVCError(f"{self.name}: a stream can be decoded only once")
            self._iterated = True
            yield from self._decode(self._reader)
            return
        with open_bitstream(self.source) as r:
            if r.header != self.header:
                raise BitstreamError(f"{self.name}: the file changed while decoding")
            yield from self._decode(r)

    def _decode(self, reader: BitstreamReader) -> Iterator[torch.Tensor]:
        h = self.header
        coder = FrameCoder(self.model, entropy_placement(h.portable_entropy), h.gop)
        with _progress(h.frame_count, "decode", self.progress) as bar:
            for packet in reader:
                with deterministic(), eval_mode(self.model):
                    x_hat = coder.decode(packet, h.padded_width, h.padded_height)
                if x_hat.shape[-2:] != (h.padded_height, h.padded_width):
                    raise BitstreamError(
                        f"{self.name}: frame {packet.index} decoded to {tuple(x_hat.shape[-2:])}, the header says "
                        f"{h.padded_height}x{h.padded_width}: corrupted file or another model"
                    )
                bar.update(1)
                yield x_hat[0, :, : h.height, : h.width].clamp(0.0, 1.0).to("cpu", torch.float32)
            reader.check_complete()


def decode_video(
    source, model: nn.Module, progress: bool = False, model_name: str = "the model"
) -> DecodedVideo:
    """Decode a .gvc file (path or readable binary file object) with `model` (the one that encoded it: checked
    through the model id in the header, BitstreamError otherwise). Returns a DecodedVideo: iterate it for RGB
    (3, H, W) frames in [0, 1]; its header gives the size, frame rate and the colour convention to write in."""
    return DecodedVideo(source, model, progress, model_name)


def stream_bpp(path) -> float:
    """bpp of a .gvc file from its size: 8 * bytes / (frames * width * height)."""
    with open_bitstream(path) as r:
        h = r.header
        n = h.frame_count if h.frame_count is not None else sum(1 for _ in r)
    return 8 * Path(path).stat().st_size / max(1, n * h.width * h.height)


__all__ = [
    "FrameCoder",
    "encode_video",
    "decode_video",
    "DecodedVideo",
    "EncodeStats",
    "FrameStats",
    "shift_for_frame",
    "pad_frame",
    "padded_size",
    "size_multiple",
    "is_video_model",
    "entropy_placement",
    "deterministic",
    "stream_bpp",
]
