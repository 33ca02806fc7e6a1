"""The .gvc container: round trips, streaming, and a clear BitstreamError for every kind of damage."""

import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gvc.codec import bitstream as bs
from gvc.codec.bitstream import (
    HEADER_BYTES,
    BitstreamError,
    BitstreamReader,
    BitstreamWriter,
    FramePacket,
    StreamHeader,
    check_model,
    open_bitstream,
    parse_bitstream,
    read_bitstream,
    serialize,
)

MID = bytes(range(16))


def _header(**kw) -> StreamHeader:
    base = dict(
        model_id=MID,
        width=176,
        height=144,
        padded_width=192,
        padded_height=192,
        fps_num=30000,
        fps_den=1001,
        matrix="bt709",
        full_range=True,
        frame_count=None,
        gop=0,
    )
    base.update(kw)
    return StreamHeader(**base)


def _packets() -> list[FramePacket]:
    return [
        FramePacket("I", 0, (b"y-string-0", b"zz"), ((3, 3),)),
        FramePacket("P", 1, (b"", b"flow" * 7, b"res", b"rz"), ((3, 3), (3, 3)), (5, 11)),
        FramePacket("P", 2, (b"\x00" * 40, b"\xff"), ((3, 3),), (0, 15)),
    ]


def _stream() -> bytes:
    return serialize(_header(), _packets())


def _with_header_fields(data: bytes, **fields) -> bytes:
    """Rewrite header payload fields (by struct position) and fix the header CRC, so only the range checks can
    catch the forged values."""
    names = [
        "model_id",
        "width",
        "height",
        "padded_width",
        "padded_height",
        "fps_num",
        "fps_den",
        "matrix",
        "full_range",
        "frame_count",
        "gop",
        "flags",
    ]
    p0 = bs._PREFIX.size
    values = list(bs._PAYLOAD_V1.unpack(data[p0 : p0 + bs._PAYLOAD_V1.size]))
    for k, v in fields.items():
        values[names.index(k)] = v
    head = data[:p0] + bs._PAYLOAD_V1.pack(*values)
    return head + struct.pack(">I", zlib.crc32(head)) + data[HEADER_BYTES:]


def _packet_offsets(data: bytes) -> list[int]:
    offs, pos = [], HEADER_BYTES
    while pos < len(data):
        offs.append(pos)
        pos += 4 + struct.unpack(">I", data[pos : pos + 4])[0] + 4
    return offs


def _replace_body(data: bytes, frame: int, body: bytes) -> bytes:
    """Replace a packet's body, writing a consistent length and CRC (a forged but well-formed packet)."""
    off = _packet_offsets(data)[frame]
    n = struct.unpack(">I", data[off : off + 4])[0]
    pkt = struct.pack(">I", len(body)) + body + struct.pack(">I", zlib.crc32(body))
    return data[:off] + pkt + data[off + 4 + n + 4 :]


def _body(data: bytes, frame: int) -> bytes:
    off = _packet_offsets(data)[frame]
    n = struct.unpack(">I", data[off : off + 4])[0]
    return data[off + 4 : off + 4 + n]


# ---------------------------------------------------------------------------------------------------- round trips

headers = st.builds(
    StreamHeader,
    model_id=st.binary(min_size=16, max_size=16),
    width=st.integers(1, 8000),
    height=st.integers(1, 8000),
    padded_width=st.just(8000),
    padded_height=st.integers(8000, bs.MAX_DIM),
    fps_num=st.integers(1, 1000),
    fps_den=st.integers(1, 1001),
    matrix=st.sampled_from(bs.MATRICES),
    full_range=st.booleans(),
    frame_count=st.none(),
    gop=st.integers(0, bs.MAX_GOP),
    portable_entropy=st.booleans(),
)
shapes = st.lists(st.lists(st.integers(1, bs.MAX_DIM), min_size=1, max_size=4).map(tuple), max_size=4).map(
    tuple
)
bodies = st.tuples(
    st.lists(st.binary(max_size=50), max_size=6).map(tuple),
    shapes,
    st.tuples(st.integers(0, 255), st.integers(0, 255)),
)


@settings(max_examples=60, deadline=None)
@given(
    header=headers, frames=st.lists(bodies, min_size=1, max_size=5), types=st.lists(st.booleans(), min_size=5)
)
def test_roundtrip_property(header, frames, types):
    packets = [
        FramePacket("I" if i == 0 or types[i] else "P", i, strings, shp, shift)
        for i, (strings, shp, shift) in enumerate(frames)
    ]
    data = serialize(header, packets)
    h, got = parse_bitstream(data)
    assert got == packets
    assert h.frame_count == len(packets) and h.model_id == header.model_id and h.gop == header.gop
    assert (h.width, h.height, h.padded_height, h.fps_num, h.fps_den) == (
        header.width,
        header.height,
        header.padded_height,
        header.fps_num,
        header.fps_den,
    )
    assert (h.matrix, h.full_range, h.portable_entropy) == (
        header.matrix,
        header.full_range,
        header.portable_entropy,
    )
    assert sum(p.nbytes for p in got) == len(data) - HEADER_BYTES  # per-frame sizes add up to the file


def test_fps_fraction_keeps_ntsc_rates_exact():
    assert StreamHeader.fps_fraction(30000 / 1001) == (30000, 1001)
    assert StreamHeader.fps_fraction(25.0) == (25, 1)
    assert _header(fps_num=24000, fps_den=1001).fps == pytest.approx(23.976, abs=1e-3)


class _Pipe(io.RawIOBase):
    """A write-only, non-seekable sink (a pipe or socket)."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


class _NonSeekableReader(io.RawIOBase):
    def __init__(self, data: bytes, chunk: int = 7):
        self._b = io.BytesIO(data)
        self.chunk = chunk

    def readable(self):
        return True

    def read(self, n=-1):  # short reads, like a pipe
        return self._b.read(min(n, self.chunk) if n >= 0 else self.chunk)


def test_streaming_to_a_pipe_frame_by_frame():
    """A low-delay sender writes each packet as its frame is coded, to a non-seekable sink (count unknown);
    a receiver reading short chunks gets every frame, and the count-unknown stream ends cleanly at EOF."""
    pipe = _Pipe()
    w = BitstreamWriter(pipe, _header())
    sizes = []
    for p in _packets():
        before = len(pipe.buf)
        sizes.append(w.write_packet(p))
        assert len(pipe.buf) - before == sizes[-1]  # flushed immediately
    w.close()
    r = BitstreamReader(_NonSeekableReader(bytes(pipe.buf)))
    assert r.header.frame_count is None
    got = list(r)
    assert got == _packets() and [p.nbytes for p in got] == sizes


def test_writer_patches_frame_count_into_seekable_file(tmp_path):
    path = tmp_path / "a.gvc"
    with open(path, "wb") as f:
        w = BitstreamWriter(f, _header())
        for p in _packets():
            w.write_packet(p)
        w.close()
    h, got = read_bitstream(path)
    assert h.frame_count == 3 and got == _packets()
    # with the count known, a file cut exactly at a packet boundary is detected
    data = path.read_bytes()
    with pytest.raises(BitstreamError, match="file ends after frame 1 .2 of 3 frames"):
        parse_bitstream(data[: _packet_offsets(data)[2]])


def test_writer_refuses_out_of_order_or_p_first():
    w = BitstreamWriter(io.BytesIO(), _header())
    with pytest.raises(BitstreamError, match="frame 1 written where 0"):
        w.write_packet(FramePacket("I", 1, ()))
    with pytest.raises(BitstreamError, match="first frame must be an I-frame"):
        w.write_packet(FramePacket("P", 0, ()))
    w = BitstreamWriter(io.BytesIO(), _header(frame_count=5))
    w.write_packet(FramePacket("I", 0, ()))
    with pytest.raises(BitstreamError, match="announced 5 frames but 1"):
        w.close()


# --------------------------------------------------------------------------------------------- damaged streams


def test_truncation_at_every_byte_is_reported():
    data = _stream()
    for k in range(1, len(data)):
        with pytest.raises(BitstreamError, match="file ends after"):
            parse_bitstream(data[:k])
    parse_bitstream(data)  # the complete file is fine


def test_truncation_message_names_the_frame_and_bytes():
    data = _stream()
    off = _packet_offsets(data)[1]
    with pytest.raises(BitstreamError) as e:
        parse_bitstream(data[: off + 10])
    assert (
        "file ends after 6 of" in str(e.value) and "frame 1" in str(e.value) and "re-encode" in str(e.value)
    )


def test_every_single_bit_flip_is_caught():
    data = _stream()
    for bit in range(len(data) * 8):
        b = bytearray(data)
        b[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            parse_bitstream(bytes(b))


def test_crc_catches_payload_damage_with_a_clear_message():
    data = bytearray(_stream())
    off = _packet_offsets(bytes(data))[2]
    data[off + 20] ^= 0x40  # inside frame 2's first string
    with pytest.raises(BitstreamError, match="frame 2 .* checksum mismatch"):
        parse_bitstream(bytes(data))
    data = bytearray(_stream())
    data[10] ^= 1  # inside the model id
    with pytest.raises(BitstreamError, match="header checksum mismatch"):
        parse_bitstream(bytes(data))


def test_wrong_magic_and_version():
    data = _stream()
    with pytest.raises(BitstreamError, match="not a gvc bitstream"):
        parse_bitstream(b"RIFF" + data[4:])
    # a real newer file: its header checksum holds
    head = data[:4] + struct.pack(">H", bs.FORMAT_VERSION + 1) + data[6 : HEADER_BYTES - 4]
    newer = head + struct.pack(">I", zlib.crc32(head)) + data[HEADER_BYTES:]
    with pytest.raises(BitstreamError, match="version 3, this gvc reads versions 1, 2: upgrade gvc"):
        parse_bitstream(newer)
    # a flipped bit in the version field: the checksum fails, so the file is corrupt, not newer
    flipped = data[:4] + struct.pack(">H", bs.FORMAT_VERSION ^ 0x40) + data[6:]
    with pytest.raises(BitstreamError, match="header checksum mismatch .*corrupted") as err:
        parse_bitstream(flipped)
    assert "upgrade" not in str(err.value)
    with pytest.raises(BitstreamError, match="not a gvc bitstream"):
        parse_bitstream(b"")  # empty file
    with pytest.raises(BitstreamError, match="not a gvc bitstream"):
        parse_bitstream(b"GIF8")


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(width=40000), "width 40000 outside"),
        (dict(padded_height=65535), "padded_height 65535 outside"),
        (dict(width=0), "width 0 outside"),
        (dict(padded_width=160), "smaller than"),
        (dict(frame_count=bs.MAX_FRAMES + 1), "frame count"),
        (dict(gop=2**32 - 2), "GOP"),
        (dict(fps_num=0), "frame rate"),
        (dict(fps_num=2**32 - 1, fps_den=1), "frame rate"),
        (dict(fps_num=5000, fps_den=1), "frame rate 5000 above"),
        (dict(matrix=7), "unknown colour code"),
        (dict(full_range=2), "unknown colour code"),
        (dict(flags=0x82), "unknown header flags 0x82"),
    ],
)
def test_forged_header_values_are_capped(fields, message):
    """Values beyond the caps are refused even when the header CRC is consistent."""
    with pytest.raises(BitstreamError, match=message):
        parse_bitstream(_with_header_fields(_stream(), **fields))


def test_forged_frame_count_does_not_loop():
    data = _with_header_fields(_stream(), frame_count=bs.MAX_FRAMES)
    with pytest.raises(BitstreamError, match="file ends after frame 2 .3 of 10000000"):
        parse_bitstream(data)


def test_lengths_past_the_end():
    data = _stream()
    off = _packet_offsets(data)[0]
    forged = data[:off] + struct.pack(">I", 5000) + data[off + 4 :]
    with pytest.raises(BitstreamError, match="of 5004 bytes of frame 0"):
        parse_bitstream(forged)
    forged = data[:off] + struct.pack(">I", 2**31) + data[off + 4 :]
    with pytest.raises(BitstreamError, match="frame 0 claims 2147483648 bytes"):
        parse_bitstream(forged)
    # a string length inside a well-formed (CRC-consistent) packet that points past the packet's end
    body = bytearray(_body(data, 1))
    pos = bs._BODY_HEAD.size + bs._QUALITY.size + 1 + 2 * (1 + 2 * 2) + 1  # after shapes and the string count
    body[pos : pos + 4] = struct.pack(">I", 2**31)
    with pytest.raises(BitstreamError, match="frame 1: string 0 needs 2147483648 bytes but the packet has"):
        parse_bitstream(_replace_body(data, 1, bytes(body)))


@pytest.mark.parametrize(
    "mutate, message",
    [
        # body layout of frame 1: type, index u32, dy, dx | quality u16 @7 | n_shapes @9 | ndim @10, dims
        # @11..14 | ndim @15 ... | n_strings @20
        (lambda b: b[:9] + bytes([bs.MAX_SHAPES + 1]) + b[10:], "lists 17 shapes"),
        (lambda b: b[:10] + bytes([9]) + b[11:], "shape of 9 dims"),
        (lambda b: b[:11] + b"\x00\x00" + b[13:], "latent shape .0, 3. outside"),
        (lambda b: b[:20] + bytes([200]) + b[21:], "lists 200 strings"),
        (lambda b: b[:20] + bytes([5]) + b[21:], "string 4 needs 4 bytes but the packet has 0 left"),
        (lambda b: b + b"junk", "4 stray bytes"),
        (lambda b: b"X" + b[1:], "unknown type"),
        (lambda b: b[:1] + struct.pack(">I", 7) + b[5:], "packet for frame 7 where frame 1 was expected"),
    ],
)
def test_forged_packet_fields(mutate, message):
    data = _stream()
    forged = _replace_body(data, 1, mutate(_body(data, 1)))
    with pytest.raises(BitstreamError, match=message):
        parse_bitstream(forged)


def test_first_frame_must_be_intra_and_no_trailing_bytes():
    data = _stream()
    body = _body(data, 0)
    with pytest.raises(BitstreamError, match="first frame is not an I-frame"):
        parse_bitstream(_replace_body(data, 0, b"P" + body[1:]))
    with pytest.raises(BitstreamError, match="unexpected bytes after the last frame"):
        parse_bitstream(data + b"\x00")


def test_model_check_names_both_models():
    h = _header()
    check_model(h, MID + b"rest-of-the-sha256")
    with pytest.raises(BitstreamError) as e:
        check_model(h, bytes(32), model_name="--model m.gvcm")
    msg = str(e.value)
    assert MID.hex()[:12] in msg and "000000000000" in msg and "--model m.gvcm" in msg


def test_missing_file(tmp_path):
    with pytest.raises(BitstreamError, match="no such bitstream file"):
        open_bitstream(tmp_path / "nope.gvc")


def test_invalid_packets_cannot_be_written():
    with pytest.raises(BitstreamError, match="at most 64"):
        FramePacket("I", 0, (b"",) * 65).to_bytes()
    with pytest.raises(BitstreamError, match="frame type"):
        FramePacket("B", 0, ()).to_bytes()
    with pytest.raises(BitstreamError, match="shift"):
        FramePacket("P", 1, (), (), (256, 0)).to_bytes()
    with pytest.raises(BitstreamError, match="width 20000 outside"):
        _header(width=20000, padded_width=20000).to_bytes()
