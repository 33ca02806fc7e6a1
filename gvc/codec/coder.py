"""Encode a video to a .gvc file and decode it back.

Frames are read as 8-bit YUV 4:2:0 by :mod:`gvc.data.io` and converted to RGB float (3, H, W) in [0, 1] with the
source's colour convention (default BT.709 full range), padded on the right/bottom by edge replication to a
multiple of the model's `size_multiple` (64), coded, and cropped back on decode. The container header records
the source size, the padded size, the frame rate and the colour convention, so the decoder needs only the .gvc
file and the model file, and writes its output in the source's convention.

Models:
- intra-only (an `IFrameCodec`, or anything with `compress(x)`/`decompress(strings, shape)`): every frame is an
  I-frame;
- video models (with `compress_frame`/`decompress_frame`, see `gvc.models.video.VideoCodec`): low delay, an
  I-frame every `gop` frames (gop <= 0 or None: only the first), P-frames predicted from the previous *decoded*
  frame (the encoder runs the decoder's reconstruction, so both stay in lock step). The residual branch's random
  shift is derived from the frame index (:func:`shift_for_frame`) and also stored in the packet (2 bytes).

Determinism (ARCHITECTURE decision 5):
- Same bytes: the same input, model file, torch build and device kind give the same .gvc bytes on every run.
  Coding runs in eval mode, float32, under `torch.use_deterministic_algorithms(True)` (warn only) with cuDNN
  benchmarking and TF32 off (settings restored afterwards). The DIS flow estimator (encoder only) is
  deterministic too.
- Same symbols everywhere: the CDF tables come from the model file (never recomputed), and by default
  (`portable_entropy=True`, flagged in the header) every hyperprior's entropy parameters (h_s -> means, scales,
  which select each symbol's CDF) are computed on the CPU in float32 with one thread
  (:class:`PortableEntropyParameters`). So a file decodes to the same latents on any device and core count
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
import copy
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gvc.codec.bitstream import (
    HEADER_BYTES,
    BitstreamReader,
    BitstreamWriter,
    FramePacket,
    StreamHeader,
    check_model,
    open_bitstream,
)
from gvc.codec.modelfile import model_id as compute_model_id
from gvc.errors import BitstreamError, GVCError, ModelFileError
from gvc.models.bottleneck import HyperpriorBottleneck
from gvc.models.shift import DEFAULT_SHIFT_PERIOD, shift_for_frame

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


def is_video_model(model: nn.Module) -> bool:
    """True for models with P-frames (compress_frame/decompress_frame), False for intra-only codecs."""
    return hasattr(model, "compress_frame") and hasattr(model, "decompress_frame")


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _model_id_bytes(model: nn.Module) -> bytes:
    try:
        return bytes.fromhex(compute_model_id(model))
    except ValueError as e:
        raise ModelFileError(f"model id {compute_model_id(model)!r} is not hex") from e


def _bits(likelihoods) -> float:
    """Estimated bits = sum of -log2 likelihood over every tensor of a (nested) likelihood dict."""
    if isinstance(likelihoods, torch.Tensor):
        return float(-torch.log2(likelihoods.detach().double()).sum())
    if isinstance(likelihoods, dict):
        return sum(_bits(v) for v in likelihoods.values())
    return sum(_bits(v) for v in likelihoods)


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


@contextlib.contextmanager
def _num_threads(n: int):
    prev = torch.get_num_threads()
    if prev != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if prev != n:
            torch.set_num_threads(prev)


class PortableEntropyParameters:
    """Computes every hyperprior's entropy parameters (h_s: means and scales) on the CPU, in float32, with
    `threads` intra-op threads, whatever device and thread count the rest of the model uses.

    The scales pick the coder's CDF per symbol, so encoder and decoder must get bit-identical scales: with h_s
    fixed to one CPU thread they do on any device and core count (GPU encode, CPU decode included), given the
    same torch build and CPU instruction set. The CPU float32 copies of h_s are taken once, at construction
    (for a model already on the CPU in float32 the towers themselves are used); `patched()` installs them on the
    bottlenecks' `entropy_parameters` for the duration of a block.
    """

    def __init__(self, model: nn.Module, threads: int = ENTROPY_THREADS):
        self.threads = int(threads)
        self._items = []
        for bn in model.modules():
            if isinstance(bn, HyperpriorBottleneck):
                towers = []
                for t in (bn.h_s_mean, bn.h_s_scale):
                    on_cpu = all(p.device.type == "cpu" and p.dtype == torch.float32 for p in t.parameters())
                    towers.append(t if on_cpu else copy.deepcopy(t).to("cpu", torch.float32))
                self._items.append((bn, tuple(towers)))

    def _fn(self, towers):
        def entropy_parameters(z_hat: torch.Tensor):
            with _num_threads(self.threads):
                z = z_hat.detach().to("cpu", torch.float32)
                means, scales = towers[0](z), towers[1](z)
            return means.to(z_hat.device), scales.to(z_hat.device)

        return entropy_parameters

    @contextlib.contextmanager
    def patched(self):
        done = []
        try:
            for bn, towers in self._items:
                if "entropy_parameters" in vars(bn):
                    raise GVCError("entropy parameters are already patched (nested coding of one model?)")
                bn.entropy_parameters = self._fn(towers)
                done.append(bn)
            yield
        finally:
            for bn in done:
                del bn.entropy_parameters


@contextlib.contextmanager
def _entropy_mode(portable: PortableEntropyParameters | None):
    if portable is None:
        yield
    else:
        with portable.patched():
            yield


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
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


class _IntraCoder:
    """Every frame an I-frame: strings [y, z], one shape (h_z, w_z)."""

    def __init__(self, model: nn.Module):
        self.model = model

    def encode(self, x: torch.Tensor, index: int, estimate: bool):
        out = self.model.compress(x)
        est = _bits(self.model(x, mode="round")["likelihoods"]) if estimate else None
        packet = FramePacket(
            "I", index, tuple(_flatten_strings(out["strings"])), (_shape_tuple(out["shape"]),)
        )
        _check_shapes(packet, [_z_shape(self.model, x.shape[-1], x.shape[-2])], "encoder")
        return packet, None, est

    def decode(self, packet: FramePacket, padded_w: int, padded_h: int) -> torch.Tensor:
        if packet.frame_type != "I" or len(packet.shapes) != 1 or len(packet.strings) != 2:
            raise BitstreamError(
                f"frame {packet.index}: {packet.frame_type}-frame with {len(packet.strings)} strings and "
                f"{len(packet.shapes)} shapes; an intra-only model needs I-frames with 2 strings and 1 shape: "
                "was it encoded with this kind of model?"
            )
        _check_shapes(packet, [_z_shape(self.model, padded_w, padded_h)], "decoder")
        strings = [[s] for s in packet.strings]
        return self.model.decompress(strings, packet.shapes[0])["x_hat"]


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


def _frame_coder(model: nn.Module):
    if is_video_model(model):
        return _VideoCoder(model)
    if hasattr(model, "compress") and hasattr(model, "decompress"):
        return _IntraCoder(model)
    raise ModelFileError(f"{type(model).__name__} cannot code frames (no compress/decompress)")


class _VideoCoder:
    """Low-delay I/P coding with a `gvc.models.video.VideoCodec`: I-frames [y, z] with one shape (h_z, w_z);
    P-frames [flow_y, flow_z, res_y, res_z] with shapes [flow (h_z, w_z), res (h_z, w_z)] and the shift applied."""

    I_STRINGS, P_STRINGS = 2, 4

    def __init__(self, model: nn.Module):
        self.model = model
        self.period = int(getattr(model, "shift_period", DEFAULT_SHIFT_PERIOD))

    def _shift(self, index: int) -> tuple[int, int]:
        if hasattr(self.model, "shift_for_frame"):
            return tuple(int(s) for s in self.model.shift_for_frame(index))
        return shift_for_frame(index, self.period)

    def encode(self, x: torch.Tensor, index: int, ref: torch.Tensor | None, intra: bool, estimate: bool):
        """-> (packet, x_hat (the decoder's reconstruction, padded, in [0, 1]), estimated bits or None)."""
        if intra:
            out = self.model.compress_frame(x, None)
            shapes = (_shape_tuple(out["shape"]),)
            shift = (0, 0)
        else:
            out = self.model.compress_frame(x, ref, shift=self._shift(index))
            shapes = tuple(_shape_tuple(s) for s in out["shape"])
            shift = tuple(int(s) for s in out.get("shift", self._shift(index)))
        packet = FramePacket(
            "I" if intra else "P", index, tuple(_flatten_strings(out["strings"])), shapes, shift
        )
        _check_shapes(packet, self._expected(packet.frame_type, x.shape[-1], x.shape[-2]), "encoder")
        est = None
        if estimate:
            if intra:
                lik = self.model.iframe(x, mode="round")["likelihoods"]
            else:
                flow_ref = self.model.estimate_flow(ref, x)
                lik = self.model.pframe(x, ref, flow_ref, shift=shift, mode="round")["likelihoods"]
            est = _bits(lik)
        return packet, out["x_hat"], est

    def _expected(self, frame_type: str, padded_w: int, padded_h: int) -> list[tuple[int, int]]:
        """z shapes of a frame: I (iframe grid); P: flow and residual (pframe grid)."""
        if frame_type == "I":
            return [_z_shape(self.model.iframe, padded_w, padded_h)]
        return [_z_shape(self.model.pframe, padded_w, padded_h)] * 2

    def decode(
        self, packet: FramePacket, ref: torch.Tensor | None, padded_w: int, padded_h: int
    ) -> torch.Tensor:
        """-> x_hat (1, 3, H_pad, W_pad) in [0, 1]; ref = the previous decoded frame (padded)."""
        i = packet.index
        strings = [[s] for s in packet.strings]
        if packet.frame_type == "I":
            if len(packet.strings) != self.I_STRINGS or len(packet.shapes) != 1:
                raise BitstreamError(
                    f"frame {i}: I-frame with {len(packet.strings)} strings and {len(packet.shapes)} shapes "
                    f"(expected {self.I_STRINGS} and 1): corrupted file or another model"
                )
            _check_shapes(packet, self._expected("I", padded_w, padded_h), "decoder")
            return self.model.decompress_frame(strings, packet.shapes[0], None)["x_hat"]
        if ref is None:
            raise BitstreamError(f"frame {i}: P-frame without a reference frame: corrupted file")
        if len(packet.strings) != self.P_STRINGS or len(packet.shapes) != 2:
            raise BitstreamError(
                f"frame {i}: P-frame with {len(packet.strings)} strings and {len(packet.shapes)} shapes "
                f"(expected {self.P_STRINGS} and 2): corrupted file or another model"
            )
        if not all(0 <= s < self.period for s in packet.shift):
            raise BitstreamError(
                f"frame {i}: shift {packet.shift} outside [0, {self.period}): corrupted file"
            )
        _check_shapes(packet, self._expected("P", padded_w, padded_h), "decoder")
        out = self.model.decompress_frame(strings, list(packet.shapes), ref, shift=tuple(packet.shift))
        return out["x_hat"]


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

    @property
    def bits(self) -> int:
        return 8 * self.bytes


@dataclass
class EncodeStats:
    """Result of encode_video. bpp = 8 * file bytes / (frames * width * height) of the source (EVALUATION.md);
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
) -> EncodeStats:
    """Encode a video into a .gvc file.

    source: a path (any format gvc.data.io reads; width/height/fps for raw .yuv, matrix/full_range set the
    YUV -> RGB convention) or an open VideoReader (its own colour settings are used). model: an intra-only codec
    or a VideoCodec, with entropy CDFs built (loaded from a model file, or `update()` called); it runs on its
    own device. out: a path or a writable binary file object (written packet by packet; a non-seekable one gets a
    stream with the frame count left unknown). gop: I-frame period for video models (None/<= 0: only the first
    frame); intra-only models code every frame as I. frames: code only the first N frames. estimate: also
    compute the likelihood estimate of each frame's bits (a second forward pass). portable_entropy: compute the
    entropy parameters on the CPU with one thread (PortableEntropyParameters; recorded in the header, the decoder
    follows it); False runs them on the model's device (faster on a GPU; decode on the same kind of device with
    the same thread count). Returns EncodeStats.
    """
    from gvc.data.io import VideoReader, open_video

    own_reader = not isinstance(source, VideoReader)
    reader = (
        open_video(source, width=width, height=height, fps=fps, matrix=matrix, full_range=full_range)
        if own_reader
        else source
    )
    try:
        return _encode(reader, model, out, gop, frames, estimate, progress, portable_entropy)
    finally:
        if own_reader:
            reader.close()


def _encode(reader, model, out, gop, frames, estimate, progress, portable_entropy) -> EncodeStats:
    n = len(reader) if frames is None else min(int(frames), len(reader))
    if n <= 0:
        raise GVCError(f"{reader.path}: nothing to encode ({len(reader)} frames, --frames {frames})")
    coder = _frame_coder(model)
    video = isinstance(coder, _VideoCoder)
    gop_h = (0 if gop is None or gop <= 0 else int(gop)) if video else 1
    mult = size_multiple(model)
    pw, ph = padded_size(reader.width, reader.height, mult)
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
        gop=gop_h,
        portable_entropy=bool(portable_entropy),
    )
    header.validate()
    device = _model_device(model)
    stats = EncodeStats(
        str(out) if not hasattr(out, "write") else getattr(out, "name", "<stream>"),
        reader.width,
        reader.height,
        pw,
        ph,
        header.fps,
        mid.hex(),
    )
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
        ref = None
        portable = PortableEntropyParameters(model) if portable_entropy else None
        with (
            deterministic(),
            _eval_mode(model),
            _entropy_mode(portable),
            _progress(n, "encode", progress) as bar,
        ):
            for i, rgb in enumerate(reader.iter_rgb(0, n)):
                x = pad_frame(rgb.to(device=device, dtype=torch.float32)[None], pw, ph)
                if video:
                    intra = i == 0 or (gop_h > 0 and i % gop_h == 0)
                    packet, ref, est = coder.encode(x, i, ref, intra, estimate)
                else:
                    packet, _, est = coder.encode(x, i, estimate)
                nbytes = writer.write_packet(packet)
                stats.frames.append(FrameStats(i, packet.frame_type, nbytes, packet.payload_bytes, est))
                bar.update(1)
        if len(stats.frames) != n:
            raise GVCError(f"{reader.path}: read {len(stats.frames)} of {n} frames")
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
    assert stats.file_bytes == HEADER_BYTES + sum(fr.bytes for fr in stats.frames)
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
        self.coder = _frame_coder(model)
        self._portable = PortableEntropyParameters(model) if h.portable_entropy else None
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
        video = isinstance(self.coder, _VideoCoder)
        ref = None
        with _progress(h.frame_count, "decode", self.progress) as bar:
            for packet in reader:
                with deterministic(), _eval_mode(self.model), _entropy_mode(self._portable):
                    if video:
                        x_hat = self.coder.decode(packet, ref, h.padded_width, h.padded_height)
                        ref = x_hat
                    else:
                        x_hat = self.coder.decode(packet, h.padded_width, h.padded_height)
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
    "deterministic",
    "stream_bpp",
]
