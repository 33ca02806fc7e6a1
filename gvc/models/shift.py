"""Random shift/unshift of the residual branch (docs/METHOD.md section 3.7, paper v1).

Recursive P-frame coding accumulates high-frequency error aligned with the latent grid (stride 16). Rolling the
residual branch's input by an offset (dy, dx) in [0, period) and rolling its output back moves that grid from
frame to frame. Training draws the offset at random per frame (`random_shift`); coding derives it from the frame
index (`shift_for_frame`), so encoder and decoder agree without side information.

Rolls are circular (torch.roll on the last two dims), so shift followed by unshift is exact.
"""

from __future__ import annotations

import hashlib

import torch

#: default period of the shift: the latent grid stride of E_res (2^4 for the HiFiC encoder)
DEFAULT_SHIFT_PERIOD = 16


def _check(shift) -> tuple[int, int]:
    if len(shift) != 2:
        raise ValueError(f"shift must be (dy, dx), got {shift!r}")
    return int(shift[0]), int(shift[1])


def apply_shift(x: torch.Tensor, shift) -> torch.Tensor:
    """Roll x (..., H, W) by (dy, dx) pixels: out[..., i, j] = x[..., (i - dy) % H, (j - dx) % W]."""
    dy, dx = _check(shift)
    if dy == 0 and dx == 0:
        return x
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def undo_shift(x: torch.Tensor, shift) -> torch.Tensor:
    """Inverse of `apply_shift`: roll by (-dy, -dx)."""
    dy, dx = _check(shift)
    return apply_shift(x, (-dy, -dx))


def random_shift(
    period: int = DEFAULT_SHIFT_PERIOD, generator: torch.Generator | None = None
) -> tuple[int, int]:
    """A uniformly random (dy, dx) in [0, period)^2 (training: one draw per frame; pass `generator` to seed)."""
    v = torch.randint(0, int(period), (2,), generator=generator)
    return int(v[0]), int(v[1])


def shift_for_frame(index: int, period: int = DEFAULT_SHIFT_PERIOD) -> tuple[int, int]:
    """The deterministic (dy, dx) in [0, period) for coded frame `index` (>= 0): the first two bytes of
    sha256(b"gvc-shift" + index as 8 big-endian bytes), each modulo `period`. Unrelated offsets for successive
    frames, identical on every machine (the same function gvc.codec.coder uses)."""
    d = hashlib.sha256(b"gvc-shift" + int(index).to_bytes(8, "big")).digest()
    return d[0] % int(period), d[1] % int(period)


__all__ = ["DEFAULT_SHIFT_PERIOD", "apply_shift", "undo_shift", "random_shift", "shift_for_frame"]
