"""Fuzzing the .gvc parser (hypothesis, 650 cases per run in total).

What this proves: for truncations, bit flips, overwritten length fields (pointing past the end, huge), forged
header sizes, wrong magic/version and random bytes, the parser (over seekable and non-seekable inputs) raises
BitstreamError and nothing else, never hangs (hypothesis deadline per case, pytest timeout per test), and never
allocates memory in proportion to a forged size (tracemalloc peak stays tiny for forged 2^31-byte lengths).
"""

import io
import struct
import tracemalloc
import zlib
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gvc.codec import bitstream as bs
from gvc.codec.bitstream import (
    HEADER_BYTES,
    BitstreamError,
    BitstreamReader,
    FramePacket,
    StreamHeader,
    serialize,
)

FUZZ = settings(
    deadline=timedelta(milliseconds=500),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)


def _valid_stream() -> bytes:
    header = StreamHeader(bytes(range(16)), 176, 144, 192, 192, 25, 1, "bt601", False, None, 3)
    packets = [
        FramePacket("I", 0, (bytes(range(60)), b"z" * 9), ((3, 3),)),
        FramePacket("P", 1, (b"f" * 12, b"g", b"r" * 30, b"s" * 3), ((3, 3), (3, 3)), (4, 9)),
        FramePacket("P", 2, (b"", b"h" * 5), ((3, 3),), (15, 0)),
        FramePacket("I", 3, (b"i" * 70, b"j" * 2), ((3, 3),)),
    ]
    return serialize(header, packets)


VALID = _valid_stream()


def _packet_offsets(data: bytes) -> list[int]:
    offs, pos = [], HEADER_BYTES
    while pos < len(data):
        offs.append(pos)
        pos += 4 + struct.unpack(">I", data[pos : pos + 4])[0] + 4
    return offs


OFFSETS = _packet_offsets(VALID)


class _Unseekable(io.RawIOBase):
    """A pipe-like reader: not seekable, returns short reads."""

    def __init__(self, data: bytes):
        self._b = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, n=-1):
        return self._b.read(min(n, 13) if n is not None and n >= 0 else 13)


def _parse(data: bytes, seekable: bool):
    """Parse fully; returns the packets. Any exception other than BitstreamError propagates (= test failure)."""
    f = io.BytesIO(data) if seekable else _Unseekable(data)
    r = BitstreamReader(f, "fuzz")
    packets = list(r)
    r.check_complete()
    return packets


def _must_reject(data: bytes, seekable: bool) -> None:
    with pytest.raises(BitstreamError):
        _parse(data, seekable)


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=150)
@given(k=st.integers(0, len(VALID) - 1), seekable=st.booleans())
def test_fuzz_truncation(k, seekable):
    _must_reject(VALID[:k], seekable)


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=150)
@given(bits=st.sets(st.integers(0, len(VALID) * 8 - 1), min_size=1, max_size=4), seekable=st.booleans())
def test_fuzz_bit_flips(bits, seekable):
    b = bytearray(VALID)
    for bit in bits:
        b[bit // 8] ^= 1 << (bit % 8)
    _must_reject(bytes(b), seekable)


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=150)
@given(
    frame=st.integers(0, len(OFFSETS) - 1),
    length=st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([2**31, 2**32 - 1, bs.MAX_PACKET_BYTES])),
    seekable=st.booleans(),
)
def test_fuzz_packet_length_fields(frame, length, seekable):
    """Overwrite a packet's length field: anything but the true length must be rejected."""
    off = OFFSETS[frame]
    true_len = struct.unpack(">I", VALID[off : off + 4])[0]
    data = VALID[:off] + struct.pack(">I", length) + VALID[off + 4 :]
    if length == true_len:
        assert len(_parse(data, seekable)) == 4
    else:
        _must_reject(data, seekable)


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=100)
@given(
    values=st.lists(st.integers(0, 2**32 - 1), min_size=12, max_size=12),
    which=st.sets(st.integers(1, 11), min_size=1),
    seekable=st.booleans(),
)
def test_fuzz_forged_header_fields(values, which, seekable):
    """Forge header fields with a consistent CRC: only values within the caps may pass, and then the frames must
    still parse (the header does not steer the packet parser into trouble)."""
    p0 = bs._PREFIX.size
    fields = list(bs._PAYLOAD_V1.unpack(VALID[p0 : p0 + bs._PAYLOAD_V1.size]))
    fmts = "HHHHIIBBIIB"
    for i in which:
        fields[i] = values[i] % (1 << (8 * struct.calcsize(">" + fmts[i - 1])))
    head = VALID[:p0] + bs._PAYLOAD_V1.pack(*fields)
    data = head + struct.pack(">I", zlib.crc32(head)) + VALID[HEADER_BYTES:]
    try:
        packets = _parse(data, seekable)
    except BitstreamError:
        return
    _, w, h, pw, ph, fnum, fden, mat, rng, count, gop, flags = fields
    assert 1 <= w <= pw <= bs.MAX_DIM and 1 <= h <= ph <= bs.MAX_DIM and mat < 2 and rng < 2 and flags < 2
    assert 1 <= fnum and 1 <= fden and fnum / fden <= bs.MAX_FPS and gop <= bs.MAX_GOP
    assert count in (4, bs.UNKNOWN_FRAME_COUNT) and len(packets) == 4


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=100)
@given(
    head=st.sampled_from(
        [
            b"",
            bs.MAGIC,
            bs.MAGIC + struct.pack(">H", 1),
            b"\x89GVD",
            b"GVC1",
            bs.MAGIC + struct.pack(">HH", 1, bs._PAYLOAD_V1.size),
        ]
    ),
    tail=st.binary(max_size=200),
    seekable=st.booleans(),
)
def test_fuzz_random_bytes(head, tail, seekable):
    """Random garbage, with and without a valid magic/version prefix, is always rejected."""
    _must_reject(head + tail, seekable)


def test_forged_huge_lengths_allocate_nothing_proportional():
    """A forged 2^31-byte packet or string length is refused before allocating; over a non-seekable input
    (where the remaining size is unknown) reads go in bounded chunks, so memory follows the real bytes."""
    off = OFFSETS[1]
    cases = []
    for length in (2**31, bs.MAX_PACKET_BYTES, bs.MAX_PACKET_BYTES - 8):
        cases.append(VALID[:off] + struct.pack(">I", length) + VALID[off + 4 :])
    # a CRC-consistent packet whose first string claims 2^31 bytes
    n = struct.unpack(">I", VALID[off : off + 4])[0]
    body = bytearray(VALID[off + 4 : off + 4 + n])
    pos = bs._BODY_HEAD.size + 1 + 2 * (1 + 2 * 2) + 1
    body[pos : pos + 4] = struct.pack(">I", 2**31)
    cases.append(
        VALID[:off]
        + struct.pack(">I", n)
        + bytes(body)
        + struct.pack(">I", zlib.crc32(body))
        + VALID[off + 4 + n + 4 :]
    )
    for data in cases:
        for seekable in (True, False):
            tracemalloc.start()
            try:
                with pytest.raises(BitstreamError):
                    _parse(data, seekable)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < 4 * bs.READ_CHUNK, (seekable, peak)  # vs 1-2 GiB forged
