"""YUV4MPEG2 (.y4m): 8-bit 4:2:0 only. The reader keeps the chroma tag (C420jpeg, C420mpeg2, ...) and the
XCOLORRANGE tag; the writer writes them back, so a Y4M copied through gvc keeps what its source said."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from gvc.data.io.base import DEFAULT_FPS, VideoReader, YUVFrame, check_even, check_file, convert_command
from gvc.data.io.colour import colour_from_y4m
from gvc.data.io.raw import FileWriter, frame_bytes, split_planes
from gvc.errors import VideoFormatError

Y4M_EXTENSIONS = (".y4m",)
Y4M_420_TAGS = ("420", "420jpeg", "420paldv", "420mpeg2")
DEFAULT_CHROMA_TAG = "420jpeg"


class Y4MReader(VideoReader):
    """YUV4MPEG2 reader. The header is parsed (W, H, F, C, XCOLORRANGE); only 8-bit 4:2:0 (C420, C420jpeg,
    C420paldv, C420mpeg2 or no C tag) is accepted. Frame offsets are indexed once (FRAME lines may carry
    parameters), so any frame is read by seeking.

    ``chroma_tag``: the C tag as written ('420jpeg' when absent); ``color_range``: XCOLORRANGE as written or None.
    """

    def __init__(self, path, **color):
        super().__init__(**color)
        self.path = Path(path)
        check_file(self.path)
        with open(self.path, "rb") as fh:
            head = fh.read(4096)
        nl = head.find(b"\n")
        if not head.startswith(b"YUV4MPEG2") or nl < 0:
            raise VideoFormatError(
                f"{self.path}: not a Y4M file (header must start with 'YUV4MPEG2 ' and end with a newline)"
            )
        params: dict[str, str] = {}
        for t in head[:nl].decode("ascii", errors="replace").split()[1:]:
            if t.startswith("XCOLORRANGE="):
                params["XCOLORRANGE"] = t.split("=", 1)[1]
            else:
                params.setdefault(t[0], t[1:])
        try:
            self.width, self.height = int(params["W"]), int(params["H"])
        except (KeyError, ValueError) as e:
            raise VideoFormatError(
                f"{self.path}: bad Y4M header {head[:nl]!r}: W and H are required integers"
            ) from e
        self.fps = DEFAULT_FPS
        if "F" in params:
            try:
                num, den = (int(x) for x in params["F"].split(":"))
                self.fps = num / den
            except (ValueError, ZeroDivisionError) as e:
                raise VideoFormatError(
                    f"{self.path}: bad Y4M frame rate 'F{params['F']}' (want Fnum:den)"
                ) from e
        self.chroma_tag = params.get("C", DEFAULT_CHROMA_TAG)
        if self.chroma_tag not in Y4M_420_TAGS:
            raise VideoFormatError(
                f"{self.path}: Y4M colour space C{self.chroma_tag} is not supported; only 8-bit 4:2:0 "
                f"(C420jpeg/C420/C420paldv/C420mpeg2). Convert: {convert_command(self.path)}"
            )
        self.color_range = params.get("XCOLORRANGE")
        self.sample_aspect = _aspect(params.get("A"))
        self._set_colour(colour_from_y4m(self.color_range))
        check_even(self.path, self.width, self.height)
        self.frame_bytes = frame_bytes(self.width, self.height)
        self._offsets = self._index_frames(nl + 1)
        self.num_frames = len(self._offsets)
        if self.num_frames == 0:
            raise VideoFormatError(f"{self.path}: Y4M file has a header but zero frames")
        self._fh = None

    def _index_frames(self, pos: int) -> list[int]:
        offsets = []
        size = self.path.stat().st_size
        with open(self.path, "rb") as fh:
            while pos < size:
                fh.seek(pos)
                line = fh.read(256)
                nl = line.find(b"\n")
                if not line.startswith(b"FRAME") or nl < 0:
                    raise VideoFormatError(
                        f"{self.path}: bad Y4M frame header at byte {pos} (frame {len(offsets)}): expected 'FRAME'"
                    )
                data = pos + nl + 1
                if data + self.frame_bytes > size:
                    raise VideoFormatError(
                        f"{self.path}: frame {len(offsets)} is truncated ({size - data} of {self.frame_bytes} bytes); "
                        "the file is cut short"
                    )
                offsets.append(data)
                pos = data + self.frame_bytes
        return offsets

    def _read_yuv(self, index: int) -> YUVFrame:
        if self._fh is None:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        self._fh.seek(self._offsets[index])
        return split_planes(self._fh.read(self.frame_bytes), self.width, self.height)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _aspect(value: str | None) -> tuple[int, int] | None:
    """The A field (pixel aspect ratio 'num:den'); None when absent, unknown (0:0) or malformed."""
    try:
        num, den = (int(v) for v in (value or "").split(":"))
    except ValueError:
        return None
    return (num, den) if 0 < num <= 0xFFFF and 0 < den <= 0xFFFF else None


class Y4MWriter(FileWriter):
    """Writes YUV4MPEG2 4:2:0 with the chroma tag ``chroma_tag`` (default C420jpeg; pass the source reader's
    ``chroma_tag`` to keep it), the pixel aspect ratio ``sample_aspect`` (default 1:1) and XCOLORRANGE=FULL|LIMITED
    from ``full_range``."""

    _frame_prefix = b"FRAME\n"

    def __init__(
        self,
        path,
        fps: float = DEFAULT_FPS,
        chroma_tag: str = DEFAULT_CHROMA_TAG,
        sample_aspect: tuple[int, int] | None = None,
        **kw,
    ):
        super().__init__(path, fps, **kw)
        self.sample_aspect = tuple(sample_aspect) if sample_aspect else (1, 1)
        tag = str(chroma_tag).removeprefix("C")
        if tag not in Y4M_420_TAGS:
            raise VideoFormatError(
                f"{self.path}: Y4M chroma tag C{tag} is not 4:2:0 (use one of {Y4M_420_TAGS})"
            )
        self.chroma_tag = tag

    def _header(self) -> bytes:
        fr = Fraction(self.fps).limit_denominator(1001)
        rng = "FULL" if self.full_range else "LIMITED"
        return (
            f"YUV4MPEG2 W{self.width} H{self.height} F{fr.numerator}:{fr.denominator} Ip A{self.sample_aspect[0]}:{self.sample_aspect[1]} C{self.chroma_tag} "
            f"XCOLORRANGE={rng}\n"
        ).encode()
