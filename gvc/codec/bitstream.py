"""The .gvc container: a versioned header, then one packet per frame. Pure bytes (no torch).

Layout (all integers big-endian)::

    header   magic b"\\x89GVC" | version u16 | payload_len u16 | payload | crc32 u32 (of everything before it)
    payload  (version 1, 43 bytes) model_id 16s | width u16 | height u16 | padded_width u16 | padded_height u16
             | fps_num u32 | fps_den u32 | matrix u8 (0 bt709, 1 bt601) | full_range u8 | frame_count u32
             (0xFFFFFFFF = unknown: read packets until the end) | gop u32 (0 = only the first frame is intra)
             | flags u8 (bit 0: entropy parameters computed portably, on the CPU in float32 with one thread;
             bit 1: the source's pixel aspect ratio follows; bit 2: the source's Y4M chroma tag follows; other
             bits must be 0)
             [| sar_num u16 | sar_den u16: only with flag bit 1 (+4 bytes); a 1:1 or unknown ratio is not written]
             [| chroma u8: only with flag bit 2 (+1 byte), the Y4M tag C420 (1), C420mpeg2 (2), C420paldv (3); the
             default C420jpeg is not written]
    packet   body_len u32 | body | crc32 u32 (of body)
    body     frame_type u8 (b"I" / b"P") | frame_index u32 | shift_dy u8 | shift_dx u8
             | quality u16 (version 2 on: the frame's quality level q of a variable-rate model as
             round(q * 256), 0xFFFF for a single-rate model; version 1 has no such field)
             | n_shapes u8 | per shape: ndim u8, ndim x u16 | n_strings u8 | per string: length u32, bytes

Versions: gvc writes version 2; it reads versions 1 and 2 (version 1, before variable-rate coding, is version 2
without the quality field: every frame of a version-1 file is single-rate).

`model_id` is the first 16 bytes of the sha256 of the model file's config and weights
(:func:`gvc.codec.modelfile.model_id`); a decoder refuses a file made by another model.

Frames can be written and read one at a time (:class:`BitstreamWriter`, :class:`BitstreamReader`), so a low-delay
sender can emit each packet as soon as its frame is coded. The writer patches the frame count into the header on
close when the output is seekable.

The parser trusts nothing: every length is checked against the caps below and against the bytes that remain
(where the stream is seekable) before anything is allocated; reads of unknown-size streams go in bounded chunks,
so memory grows only with bytes that really exist. Any malformed input raises
:class:`gvc.errors.BitstreamError` saying what is wrong and what to do.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from gvc.errors import BitstreamError

MAGIC = b"\x89GVC"
FORMAT_VERSION = 2
#: the versions this gvc reads (version 1: packets without the quality field)
READ_VERSIONS = (1, 2)
#: a frame's quality level q is stored as round(q * QUALITY_SCALE) in a u16 (steps of 1/256 of a level)
QUALITY_SCALE = 256
NO_QUALITY = 0xFFFF
MAX_QUALITY = (NO_QUALITY - 1) / QUALITY_SCALE
MODEL_ID_BYTES = 16

#: caps on header values (a forged header cannot ask for more)
MAX_DIM = 16384
MAX_FRAMES = 10_000_000
MAX_GOP = 10_000_000
MAX_FPS = 1000
MAX_FPS_TERM = 2**31 - 1
#: caps on packet contents
MAX_PACKET_BYTES = 2**30
MAX_STRINGS = 64
MAX_SHAPES = 16
MAX_SHAPE_NDIM = 4
MAX_SHIFT = 255
UNKNOWN_FRAME_COUNT = 0xFFFFFFFF
#: a float frame rate this close to N/1.001 is stored as N*1000/1001 (NTSC rates, as ffmpeg prints them rounded)
NTSC_TOLERANCE = 0.006
#: bounded chunk size of reads from streams whose size is unknown
READ_CHUNK = 1 << 20

MATRICES = ("bt709", "bt601")
FRAME_TYPES = ("I", "P")

_PREFIX = struct.Struct(">4sHH")
_PAYLOAD_V1 = struct.Struct(f">{MODEL_ID_BYTES}sHHHHIIBBIIB")
FLAG_PORTABLE_ENTROPY = 0x01
FLAG_SAMPLE_ASPECT = 0x02
FLAG_CHROMA_TAG = 0x04
KNOWN_FLAGS = FLAG_PORTABLE_ENTROPY | FLAG_SAMPLE_ASPECT | FLAG_CHROMA_TAG
#: Y4M 4:2:0 chroma tags by their header code (0, C420jpeg, the default, is never written)
CHROMA_TAGS = ("420jpeg", "420", "420mpeg2", "420paldv")
_SAR = struct.Struct(">HH")
_U32 = struct.Struct(">I")
_BODY_HEAD = struct.Struct(">cIBB")
_QUALITY = struct.Struct(">H")
_CRC = struct.Struct(">I")
#: bytes a packet adds besides its strings: length and CRC fields, fixed body fields, counts
PACKET_FIXED_BYTES = _U32.size + _BODY_HEAD.size + _QUALITY.size + 2 + _CRC.size
HEADER_BYTES = _PREFIX.size + _PAYLOAD_V1.size + _CRC.size


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class StreamHeader:
    """What the decoder needs besides the model: sizes (pixels), frame rate, colour convention, counts.

    width/height: source size; padded_*: the size the networks coded (>= source, cropped back on decode).
    fps = fps_num / fps_den. matrix/full_range: the YUV <-> RGB convention of the source, which decoded output
    files use too. frame_count None = unknown (a stream still being written). gop: frames per intra period
    (1 = all intra, 0 = only the first frame is intra). portable_entropy: the entropy parameters (h_s) were
    computed on the CPU in float32 with one thread (gvc.codec.coder), so any machine decodes the symbols the
    same way; False: on the encoder's device (decode on the same kind of device).
    """

    model_id: bytes
    width: int
    height: int
    padded_width: int
    padded_height: int
    fps_num: int
    fps_den: int
    matrix: str = "bt709"
    full_range: bool = True
    frame_count: int | None = None
    gop: int = 1
    portable_entropy: bool = True
    version: int = FORMAT_VERSION
    #: the source's pixel (sample) aspect ratio (num, den), e.g. (128, 117); None = square or unknown
    sample_aspect: tuple[int, int] | None = None
    #: the source's Y4M chroma tag (chroma siting), one of CHROMA_TAGS; None = the default, 420jpeg
    chroma_tag: str | None = None

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den

    @staticmethod
    def fps_fraction(fps: float) -> tuple[int, int]:
        """A float frame rate as (num, den), e.g. 29.97002997 -> (30000, 1001)."""
        fps = float(fps)
        if not math.isfinite(fps) or fps <= 0:
            raise BitstreamError(f"frame rate {fps} is not a positive number")
        ntsc = round(fps * 1.001)
        if abs(fps * 1.001 - ntsc) < NTSC_TOLERANCE and abs(fps - round(fps)) > NTSC_TOLERANCE:
            return ntsc * 1000, 1001  # 29.97 -> 30000/1001, 23.976 -> 24000/1001, 59.94 -> 60000/1001
        f = Fraction(fps).limit_denominator(1001)
        return f.numerator, f.denominator

    def validate(self) -> StreamHeader:
        """Raise BitstreamError if any field is out of range; return self."""
        problems = []
        if not isinstance(self.model_id, bytes) or len(self.model_id) != MODEL_ID_BYTES:
            problems.append(f"model id must be {MODEL_ID_BYTES} bytes")
        for name in ("width", "height", "padded_width", "padded_height"):
            v = getattr(self, name)
            if not 1 <= v <= MAX_DIM:
                problems.append(f"{name} {v} outside 1..{MAX_DIM}")
        if self.padded_width < self.width or self.padded_height < self.height:
            problems.append(
                f"padded size {self.padded_width}x{self.padded_height} smaller than {self.width}x{self.height}"
            )
        if not (1 <= self.fps_num <= MAX_FPS_TERM and 1 <= self.fps_den <= MAX_FPS_TERM):
            problems.append(f"frame rate {self.fps_num}/{self.fps_den} has a zero or huge term")
        elif self.fps > MAX_FPS:
            problems.append(f"frame rate {self.fps:g} above {MAX_FPS}")
        if self.matrix not in MATRICES:
            problems.append(f"colour matrix {self.matrix!r} not one of {MATRICES}")
        if self.frame_count is not None and not 0 <= self.frame_count <= MAX_FRAMES:
            problems.append(f"frame count {self.frame_count} outside 0..{MAX_FRAMES}")
        if not 0 <= self.gop <= MAX_GOP:
            problems.append(f"GOP {self.gop} outside 0..{MAX_GOP}")
        if self.sample_aspect is not None and (
            len(self.sample_aspect) != 2 or not all(1 <= int(v) <= 0xFFFF for v in self.sample_aspect)
        ):
            problems.append(f"pixel aspect ratio {self.sample_aspect} not two values in 1..65535")
        if self.chroma_tag is not None and self.chroma_tag not in CHROMA_TAGS:
            problems.append(f"chroma tag {self.chroma_tag!r} not one of {CHROMA_TAGS}")
        if self.version not in READ_VERSIONS:
            problems.append(f"format version {self.version} (this gvc reads {READ_VERSIONS})")
        if problems:
            raise BitstreamError("bad stream header: " + "; ".join(problems))
        return self

    def _sar(self) -> bool:
        """Whether the header carries a pixel aspect ratio (a known one other than 1:1)."""
        return self.sample_aspect is not None and self.sample_aspect[0] != self.sample_aspect[1]

    def _chroma(self) -> bool:
        """Whether the header carries a chroma tag (one other than the default C420jpeg)."""
        return self.chroma_tag not in (None, CHROMA_TAGS[0])

    def to_bytes(self) -> bytes:
        self.validate()
        payload = _PAYLOAD_V1.pack(
            self.model_id,
            self.width,
            self.height,
            self.padded_width,
            self.padded_height,
            self.fps_num,
            self.fps_den,
            MATRICES.index(self.matrix),
            int(bool(self.full_range)),
            UNKNOWN_FRAME_COUNT if self.frame_count is None else self.frame_count,
            self.gop,
            (FLAG_PORTABLE_ENTROPY if self.portable_entropy else 0)
            | (FLAG_SAMPLE_ASPECT if self._sar() else 0)
            | (FLAG_CHROMA_TAG if self._chroma() else 0),
        )
        if self._sar():
            payload += _SAR.pack(*self.sample_aspect)
        if self._chroma():
            payload += bytes([CHROMA_TAGS.index(self.chroma_tag)])
        head = _PREFIX.pack(MAGIC, self.version, len(payload)) + payload
        return head + _CRC.pack(_crc(head))


@dataclass(frozen=True)
class FramePacket:
    """One coded frame: type "I"/"P", its index, the residual-branch shift (dy, dx) in pixels, the latent shapes
    the decoder needs, the entropy-coded strings, and the quality level q of a variable-rate model (a multiple of
    1 / QUALITY_SCALE, `quantize_quality`; None for a single-rate model). `nbytes` = its size in the file (set by
    the reader)."""

    frame_type: str
    index: int
    strings: tuple[bytes, ...]
    shapes: tuple[tuple[int, ...], ...] = ()
    shift: tuple[int, int] = (0, 0)
    nbytes: int = field(default=0, compare=False)
    quality: float | None = None

    def validate(self) -> FramePacket:
        problems = []
        if self.frame_type not in FRAME_TYPES:
            problems.append(f"frame type {self.frame_type!r} not one of {FRAME_TYPES}")
        if not 0 <= self.index < MAX_FRAMES:
            problems.append(f"frame index {self.index} outside 0..{MAX_FRAMES - 1}")
        if len(self.shift) != 2 or not all(0 <= s <= MAX_SHIFT for s in self.shift):
            problems.append(f"shift {self.shift} not two values in 0..{MAX_SHIFT}")
        if len(self.shapes) > MAX_SHAPES:
            problems.append(f"{len(self.shapes)} shapes (at most {MAX_SHAPES})")
        for s in self.shapes:
            if not 1 <= len(s) <= MAX_SHAPE_NDIM or not all(1 <= d <= MAX_DIM for d in s):
                problems.append(f"shape {tuple(s)} needs 1..{MAX_SHAPE_NDIM} dims in 1..{MAX_DIM}")
        if len(self.strings) > MAX_STRINGS:
            problems.append(f"{len(self.strings)} strings (at most {MAX_STRINGS})")
        if self.quality is not None and (
            not 0 <= self.quality <= MAX_QUALITY or self.quality != quantize_quality(self.quality)
        ):
            problems.append(
                f"quality level {self.quality} not a multiple of 1/{QUALITY_SCALE} in 0..{MAX_QUALITY:g} "
                "(quantize_quality)"
            )
        if any(not isinstance(s, bytes | bytearray) for s in self.strings):
            problems.append("strings must be bytes")
        if problems:
            raise BitstreamError(f"bad packet for frame {self.index}: " + "; ".join(problems))
        return self

    def to_bytes(self, version: int = FORMAT_VERSION) -> bytes:
        """The packet as format `version` writes it (version 1: no quality field, so a single-rate frame)."""
        self.validate()
        parts = [_BODY_HEAD.pack(self.frame_type.encode(), self.index, *self.shift)]
        if version >= 2:
            code = NO_QUALITY if self.quality is None else round(self.quality * QUALITY_SCALE)
            parts.append(_QUALITY.pack(code))
        elif self.quality is not None:
            raise BitstreamError(f"frame {self.index}: format version {version} cannot carry a quality level")
        parts.append(bytes([len(self.shapes)]))
        for s in self.shapes:
            parts.append(struct.pack(f">B{len(s)}H", len(s), *s))
        parts.append(bytes([len(self.strings)]))
        for s in self.strings:
            parts.append(_U32.pack(len(s)))
            parts.append(bytes(s))
        body = b"".join(parts)
        if len(body) > MAX_PACKET_BYTES:
            raise BitstreamError(
                f"frame {self.index}: packet of {len(body)} bytes exceeds {MAX_PACKET_BYTES}"
            )
        return _U32.pack(len(body)) + body + _CRC.pack(_crc(body))

    @property
    def payload_bytes(self) -> int:
        """Bytes of entropy-coded strings only (no container fields)."""
        return sum(len(s) for s in self.strings)


def quantize_quality(q: float) -> float:
    """q on the grid a packet stores (multiples of 1 / QUALITY_SCALE): what the encoder codes with, so the
    decoder's q is the encoder's exactly."""
    return round(float(q) * QUALITY_SCALE) / QUALITY_SCALE


# ---------------------------------------------------------------------------------------------------------------
# reading


class _Body:
    """Bounds-checked cursor over one packet body."""

    def __init__(self, data: bytes, frame: int):
        self.data, self.pos, self.frame = data, 0, frame

    def take(self, n: int, what: str) -> bytes:
        left = len(self.data) - self.pos
        if n > left:
            raise BitstreamError(
                f"frame {self.frame}: {what} needs {n} bytes but the packet has {left} left: "
                "corrupted file; re-encode it"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]


class BitstreamReader:
    """Reads a .gvc stream from a binary file object: `header` at once, then packets one at a time.

    Iterating yields FramePacket objects in order; it checks indices run 0, 1, 2, ..., that the first frame
    is intra, and that the file holds exactly `header.frame_count` frames (when known). `name` is used in errors.
    """

    def __init__(self, f: BinaryIO, name: str = "<stream>", owns_file: bool = False):
        self._f = f
        self._owns_file = owns_file
        self.name = name
        self._pos = 0
        self._remaining: int | None = None
        try:
            if f.seekable():
                cur = f.tell()
                end = f.seek(0, os.SEEK_END)
                f.seek(cur)
                self._remaining = end - cur
        except (OSError, ValueError):
            self._remaining = None
        self._next_index = 0
        self._done = False
        self.header = self._read_header()

    # -- low level
    def _read(self, n: int, what: str, allow_eof: bool = False) -> bytes | None:
        """Exactly n bytes; None at a clean end of stream when allow_eof and nothing is left."""
        if self._remaining is not None and n > self._remaining:
            if allow_eof and self._remaining == 0:
                return None
            raise BitstreamError(
                f"{self.name}: file ends after {self._remaining} of {n} bytes of {what}: truncated? "
                "re-encode or copy the whole file"
            )
        chunks, got = [], 0
        while got < n:
            b = self._f.read(min(n - got, READ_CHUNK))
            if not b:
                break
            chunks.append(b)
            got += len(b)
        if got < n:
            if allow_eof and got == 0:
                return None
            raise BitstreamError(
                f"{self.name}: file ends after {got} of {n} bytes of {what}: truncated? re-encode or copy the whole file"
            )
        self._pos += n
        if self._remaining is not None:
            self._remaining -= n
        return b"".join(chunks)

    def _read_upto(self, n: int) -> bytes:
        """Up to n (small) bytes, fewer only at the end of the stream."""
        chunks, got = [], 0
        while got < n:
            b = self._f.read(n - got)
            if not b:
                break
            chunks.append(b)
            got += len(b)
        self._pos += got
        if self._remaining is not None:
            self._remaining -= got
        return b"".join(chunks)

    def _read_header(self) -> StreamHeader:
        prefix = self._read_upto(_PREFIX.size)
        if not prefix:
            raise BitstreamError(
                f"{self.name}: empty file, not a gvc bitstream; give a file written by `gvc encode`"
            )
        if not (prefix[:4] == MAGIC[: len(prefix)] or prefix.startswith(MAGIC)):
            raise BitstreamError(
                f"{self.name}: not a gvc bitstream (starts with {prefix[:4]!r}, expected {MAGIC!r}); "
                "give a file written by `gvc encode`"
            )
        if len(prefix) < _PREFIX.size:
            raise BitstreamError(
                f"{self.name}: file ends after {len(prefix)} of {_PREFIX.size} bytes of the stream header: "
                "truncated? re-encode or copy the whole file"
            )
        magic, version, plen = _PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise BitstreamError(
                f"{self.name}: not a gvc bitstream (starts with {magic!r}, expected {MAGIC!r}); "
                "give a file written by `gvc encode`"
            )
        if version not in READ_VERSIONS:
            self._other_version(prefix, version, plen)
        if plen not in {_PAYLOAD_V1.size + a + c for a in (0, _SAR.size) for c in (0, 1)}:
            raise BitstreamError(
                f"{self.name}: header payload of {plen} bytes, version {version} has {_PAYLOAD_V1.size}: "
                "corrupted header; re-encode"
            )
        payload = self._read(plen, "the stream header")
        (crc,) = _CRC.unpack(self._read(_CRC.size, "the header checksum"))
        if crc != _crc(prefix + payload):
            raise BitstreamError(
                f"{self.name}: header checksum mismatch: the file is corrupted; re-encode it"
            )
        mid, w, h, pw, ph, fnum, fden, mat, rng, count, gop, flags = _PAYLOAD_V1.unpack(
            payload[: _PAYLOAD_V1.size]
        )
        if flags & ~KNOWN_FLAGS:
            raise BitstreamError(
                f"{self.name}: unknown header flags 0x{flags:02x}: made by a newer gvc (upgrade) or corrupted"
            )
        extra = payload[_PAYLOAD_V1.size :]
        want = (_SAR.size if flags & FLAG_SAMPLE_ASPECT else 0) + (1 if flags & FLAG_CHROMA_TAG else 0)
        if len(extra) != want:
            raise BitstreamError(
                f"{self.name}: the header's aspect-ratio / chroma flags and its size disagree: corrupted header"
            )
        sar = _SAR.unpack(extra[: _SAR.size]) if flags & FLAG_SAMPLE_ASPECT else None
        chroma = None
        if flags & FLAG_CHROMA_TAG:
            code = extra[-1]
            if not 1 <= code < len(CHROMA_TAGS):
                raise BitstreamError(f"{self.name}: unknown chroma tag code {code}: corrupted header")
            chroma = CHROMA_TAGS[code]
        if mat >= len(MATRICES) or rng > 1:
            raise BitstreamError(
                f"{self.name}: unknown colour code (matrix {mat}, range {rng}): corrupted header"
            )
        header = StreamHeader(
            model_id=mid,
            width=w,
            height=h,
            padded_width=pw,
            padded_height=ph,
            fps_num=fnum,
            fps_den=fden,
            matrix=MATRICES[mat],
            full_range=bool(rng),
            frame_count=None if count == UNKNOWN_FRAME_COUNT else count,
            gop=gop,
            portable_entropy=bool(flags & FLAG_PORTABLE_ENTROPY),
            version=version,
            sample_aspect=sar,
            chroma_tag=chroma,
        )
        try:
            return header.validate()
        except BitstreamError as e:
            raise BitstreamError(f"{self.name}: {e}; the file is corrupted or not from gvc") from None

    def _other_version(self, prefix: bytes, version: int, plen: int) -> None:
        """Raise for a header of another format version: "upgrade gvc" only when its checksum holds (every
        version's header ends in a CRC of what precedes it); a flipped bit in the version field is corruption."""
        try:
            payload = self._read(plen, "the stream header")
            (crc,) = _CRC.unpack(self._read(_CRC.size, "the header checksum"))
            intact = crc == _crc(prefix + payload)
        except BitstreamError:
            intact = False
        if not intact:
            raise BitstreamError(
                f"{self.name}: header checksum mismatch (the version field reads {version}): the file is "
                "corrupted; re-encode it"
            )
        newer = version > FORMAT_VERSION
        raise BitstreamError(
            f"{self.name}: bitstream format version {version}, this gvc reads versions "
            f"{', '.join(map(str, READ_VERSIONS))}: "
            + ("upgrade gvc" if newer else "re-encode it with this gvc")
        )

    # -- packets
    def read_packet(self) -> FramePacket | None:
        """The next packet, or None after the last one. Raises BitstreamError on anything malformed."""
        if self._done:
            return None
        i = self._next_index
        count = self.header.frame_count
        start = self._pos
        if count is not None and i >= count:
            self._done = True
            if self._remaining:
                raise BitstreamError(
                    f"{self.name}: {self._remaining} unexpected bytes after the last frame ({count}): "
                    "corrupted or concatenated file"
                )
            if self._remaining is None and self._f.read(1):
                raise BitstreamError(
                    f"{self.name}: unexpected bytes after the last frame ({count}): corrupted file"
                )
            return None
        raw_len = self._read(_U32.size, f"the length of frame {i}", allow_eof=True)
        if raw_len is None:
            self._done = True
            if count is not None:
                where = (
                    f"after frame {i - 1} ({i} of {count} frames"
                    if i
                    else f"after its header (0 of {count} frames"
                )
                raise BitstreamError(
                    f"{self.name}: file ends {where}, {start} bytes): truncated? re-encode or copy the whole file"
                )
            return None
        (body_len,) = _U32.unpack(raw_len)
        if body_len > MAX_PACKET_BYTES:
            raise BitstreamError(
                f"{self.name}: frame {i} claims {body_len} bytes (limit {MAX_PACKET_BYTES}): corrupted file; re-encode"
            )
        if body_len < _BODY_HEAD.size + 2:
            raise BitstreamError(
                f"{self.name}: frame {i} claims only {body_len} bytes: corrupted file; re-encode"
            )
        body = self._read(body_len + _CRC.size, f"frame {i} (packet at byte {start})")
        body, crc = body[:body_len], _CRC.unpack(body[body_len:])[0]
        if crc != _crc(body):
            raise BitstreamError(
                f"{self.name}: frame {i} (byte {start}) checksum mismatch: the file is corrupted; re-encode or "
                "re-copy it"
            )
        packet = self._parse_body(body, i, self._pos - start)
        self._next_index += 1
        return packet

    def _parse_body(self, body: bytes, i: int, nbytes: int) -> FramePacket:
        cur = _Body(body, i)
        ftype, index, dy, dx = _BODY_HEAD.unpack(cur.take(_BODY_HEAD.size, "the frame fields"))
        if ftype not in (b"I", b"P"):
            raise BitstreamError(f"{self.name}: frame {i} has unknown type {ftype!r}: corrupted file")
        if index != i:
            raise BitstreamError(
                f"{self.name}: packet for frame {index} where frame {i} was expected: frames missing or reordered"
            )
        if i == 0 and ftype != b"I":
            raise BitstreamError(f"{self.name}: the first frame is not an I-frame: corrupted file")
        quality = None
        if self.header.version >= 2:
            (code,) = _QUALITY.unpack(cur.take(_QUALITY.size, "the quality level"))
            quality = None if code == NO_QUALITY else code / QUALITY_SCALE
        n_shapes = cur.u8("the shape count")
        if n_shapes > MAX_SHAPES:
            raise BitstreamError(f"{self.name}: frame {i} lists {n_shapes} shapes (at most {MAX_SHAPES})")
        shapes = []
        for _ in range(n_shapes):
            ndim = cur.u8("a shape")
            if not 1 <= ndim <= MAX_SHAPE_NDIM:
                raise BitstreamError(
                    f"{self.name}: frame {i} has a shape of {ndim} dims (1..{MAX_SHAPE_NDIM})"
                )
            dims = struct.unpack(f">{ndim}H", cur.take(2 * ndim, "a shape"))
            if not all(1 <= d <= MAX_DIM for d in dims):
                raise BitstreamError(f"{self.name}: frame {i} has a latent shape {dims} outside 1..{MAX_DIM}")
            shapes.append(dims)
        n_strings = cur.u8("the string count")
        if n_strings > MAX_STRINGS:
            raise BitstreamError(f"{self.name}: frame {i} lists {n_strings} strings (at most {MAX_STRINGS})")
        strings = []
        for k in range(n_strings):
            (n,) = _U32.unpack(cur.take(_U32.size, f"the length of string {k}"))
            strings.append(cur.take(n, f"string {k}"))
        if cur.pos != len(body):
            raise BitstreamError(
                f"{self.name}: frame {i} has {len(body) - cur.pos} stray bytes after its strings: corrupted file"
            )
        return FramePacket(ftype.decode(), index, tuple(strings), tuple(shapes), (dy, dx), nbytes, quality)

    def __iter__(self) -> Iterator[FramePacket]:
        while True:
            p = self.read_packet()
            if p is None:
                return
            yield p

    def close(self) -> None:
        """Close the file if this reader opened it (`open_bitstream`)."""
        if self._owns_file:
            self._f.close()

    def __enter__(self) -> BitstreamReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_complete(self) -> None:
        """After iterating: raise if fewer frames than the header announced were read."""
        count = self.header.frame_count
        if count is not None and self._next_index < count:
            raise BitstreamError(f"{self.name}: only {self._next_index} of {count} frames read")


class BitstreamWriter:
    """Writes a header, then packets one at a time (each is flushed: low delay).

    If `header.frame_count` is None the count is written as unknown and, on `close()`, patched into the header
    when the file object is seekable. A known count is checked against the packets written on close.
    """

    def __init__(self, f: BinaryIO, header: StreamHeader):
        self._f = f
        self.header = header
        self._start = f.tell() if f.seekable() else None
        head = header.to_bytes()
        f.write(head)
        self.bytes_written = len(head)  # HEADER_BYTES, + 4 when the header carries a pixel aspect ratio
        self.frames_written = 0

    def write_packet(self, packet: FramePacket) -> int:
        """Append one packet; returns its size in bytes."""
        if packet.index != self.frames_written:
            raise BitstreamError(
                f"packet for frame {packet.index} written where {self.frames_written} was due"
            )
        if packet.index == 0 and packet.frame_type != "I":
            raise BitstreamError("the first frame must be an I-frame")
        data = packet.to_bytes(self.header.version)
        self._f.write(data)
        self._f.flush()
        self.frames_written += 1
        self.bytes_written += len(data)
        return len(data)

    def close(self) -> None:
        """Finish: patch the frame count into the header (seekable outputs) or check it."""
        count = self.header.frame_count
        if count is not None and count != self.frames_written:
            raise BitstreamError(f"header announced {count} frames but {self.frames_written} were written")
        if count is None and self._start is not None:
            end = self._f.tell()
            self.header = _replace_count(self.header, self.frames_written)
            self._f.seek(self._start)
            self._f.write(self.header.to_bytes())
            self._f.seek(end)
        self._f.flush()


def _replace_count(h: StreamHeader, n: int) -> StreamHeader:
    return replace(h, frame_count=n)


# ---------------------------------------------------------------------------------------------------------------
# whole-buffer helpers


def serialize(header: StreamHeader, packets: Iterable[FramePacket]) -> bytes:
    """Header and packets as one bytes object (frame_count None is filled in)."""
    packets = list(packets)
    if header.frame_count is None:
        header = _replace_count(header, len(packets))
    buf = io.BytesIO()
    w = BitstreamWriter(buf, header)
    for p in packets:
        w.write_packet(p)
    w.close()
    return buf.getvalue()


def parse_bitstream(data: bytes, name: str = "<bytes>") -> tuple[StreamHeader, list[FramePacket]]:
    """Parse a whole stream held in memory; raises BitstreamError on anything malformed."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BitstreamError(f"{name}: expected bytes, got {type(data).__name__}")
    r = BitstreamReader(io.BytesIO(data), name)
    packets = list(r)
    r.check_complete()
    return r.header, packets


def open_bitstream(path) -> BitstreamReader:
    """Open a .gvc file for streaming reads (use as a context manager); a missing file raises BitstreamError."""
    p = Path(path)
    if p.is_dir():
        raise BitstreamError(f"{p} is a folder, not a .gvc bitstream file; give the file `gvc encode` wrote")
    if not p.is_file():
        raise BitstreamError(f"{p}: no such bitstream file (check the path)")
    try:
        f = open(p, "rb")  # noqa: SIM115 - owned and closed by the reader
    except OSError as e:
        raise BitstreamError(f"{p}: cannot open ({e.strerror}); check its permissions") from e
    try:
        return BitstreamReader(f, str(p), owns_file=True)
    except BaseException:
        f.close()
        raise


def read_bitstream(path) -> tuple[StreamHeader, list[FramePacket]]:
    """Parse a whole .gvc file."""
    with open_bitstream(path) as r:
        packets = list(r)
        r.check_complete()
        return r.header, packets


def check_model(
    header: StreamHeader, model_id: bytes, name: str = "bitstream", model_name: str = "the model"
) -> None:
    """Raise BitstreamError unless the stream was made by the model with id `model_id`."""
    if header.model_id != model_id[:MODEL_ID_BYTES]:
        raise BitstreamError(
            f"{name} was made by model {header.model_id.hex()[:12]}…, not {model_id.hex()[:12]}… given as "
            f"{model_name}: decode with the model file used to encode it"
        )


__all__ = [
    "BitstreamError",
    "MAGIC",
    "FORMAT_VERSION",
    "READ_VERSIONS",
    "quantize_quality",
    "StreamHeader",
    "FramePacket",
    "BitstreamReader",
    "BitstreamWriter",
    "serialize",
    "parse_bitstream",
    "open_bitstream",
    "read_bitstream",
    "check_model",
    "HEADER_BYTES",
    "PACKET_FIXED_BYTES",
]
