"""Motion diagnostics of an I+P model on one clip: does the decoded flow follow the true motion, and what would
a perfect flow give?

All figures are on the frame area only (the padding to the model's multiple is cropped), coded as the decoder
does (rounded latents, low delay: one I-frame, then P-frames from the previous reconstruction), against the
model's own frozen flow estimator run between the ORIGINAL frames (the "true" motion, the reference flow):

- ``flow_epe`` (pixels): mean end-point error ||flow_hat - flow_ref||_2 of the decoded flow, per P-frame;
- ``zero_motion_epe`` (pixels): the same for predicting no motion, i.e. the mean magnitude of the reference flow;
  a decoded flow that collapses to zero scores this;
- the oracle-flow bound: PSNR-Y of a P-frame stream whose prediction warps with the reference flow, sigma 0 and
  no flow bits (`VideoCodec.forward_clip(..., oracle_flow=True)`, gvc/models/video.py), and its estimated rate
  (-log2 of the rounded latents' likelihoods, bits over the frame area).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gvc.codec.coder import is_video_model, pad_frame, padded_size
from gvc.data.color import rgb_to_yuv420
from gvc.eval.metrics.fidelity import psnr_planes


def end_point_error(flow: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean end-point error in pixels: ||flow - reference||_2 over the flow channels (dim 1) of (B, 2, H, W)
    flows, averaged over batch and pixels. ``reference`` zero gives the mean magnitude of ``flow``."""
    if flow.shape != reference.shape or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"flows must both be (B, 2, H, W), got {tuple(flow.shape)} and {tuple(reference.shape)}"
        )
    return float((flow.float() - reference.float()).pow(2).sum(1).sqrt().mean())


def block_mean_flow(flow: torch.Tensor, block: int) -> torch.Tensor:
    """The reference flow as a flow latent of 1/``block`` resolution could carry it at best: the mean of each
    block x block tile, bilinearly upsampled back, (B, 2, H, W) pixels. Its EPE against the reference is the
    part of the motion that is finer than the latent grid (a yardstick for a flow codec: what is left when
    everything coarser were coded exactly)."""
    h, w = flow.shape[-2:]
    pooled = F.avg_pool2d(flow.float(), block, ceil_mode=True)
    up = F.interpolate(pooled, scale_factor=block, mode="bilinear", align_corners=False)
    return up[..., :h, :w]


def pad_clip(clip: torch.Tensor, multiple: int) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B, T, 3, H', W') with H', W' rounded up to ``multiple`` by replicating the last
    row / column (what the coder does to each frame, gvc.codec.coder.pad_frame)."""
    b, t, c, h, w = clip.shape
    pw, ph = padded_size(w, h, multiple)
    return pad_frame(clip.reshape(b * t, c, h, w), pw, ph).reshape(b, t, c, ph, pw)


@dataclass(frozen=True)
class MotionDiagnostics:
    """One clip's motion figures. Per P-frame (T - 1 entries, frames 1..T-1): ``flow_epe`` and
    ``zero_motion_epe`` in pixels. Per frame (T entries; None when the oracle was not run): ``oracle_psnr_y``
    in dB, and ``oracle_bits`` (estimated bits of the whole oracle stream); ``pixels`` = H * W of one frame."""

    flow_epe: list[float]
    zero_motion_epe: list[float]
    oracle_psnr_y: list[float] | None
    oracle_bits: float | None
    pixels: int

    def summary(self) -> dict[str, float | None]:
        """Means over the clip: ``flow_epe``, ``zero_motion_epe`` (px), ``flow_epe_ratio`` (decoded over zero
        motion), ``oracle_psnr_y`` (dB) and ``oracle_bpp_est`` (oracle bits per pixel per frame)."""
        epe, zero = float(np.mean(self.flow_epe)), float(np.mean(self.zero_motion_epe))
        out: dict[str, float | None] = {
            "flow_epe": epe,
            "zero_motion_epe": zero,
            "flow_epe_ratio": epe / max(zero, 1e-9),
            "oracle_psnr_y": None,
            "oracle_bpp_est": None,
        }
        if self.oracle_psnr_y is not None and self.oracle_bits is not None:
            out["oracle_psnr_y"] = float(np.mean(self.oracle_psnr_y))
            out["oracle_bpp_est"] = self.oracle_bits / (len(self.oracle_psnr_y) * self.pixels)
        return out


@torch.no_grad()
def flow_errors(
    video: nn.Module, padded: torch.Tensor, outs: Sequence[Mapping[str, Any]], height: int, width: int
) -> tuple[list[float], list[float]]:
    """Per P-frame t >= 1 of ``outs`` (``forward_clip`` of the padded clip (B, T, 3, H', W')): the EPE of its
    ``flow_hat`` against ``video.flow_estimator(frame t-1, frame t)`` of the original frames, and the zero-motion
    EPE; both in pixels over the top-left ``height`` x ``width`` frame area."""
    epe, zero = [], []
    for t in range(1, padded.shape[1]):
        ref = video.flow_estimator(padded[:, t - 1], padded[:, t]).float()[..., :height, :width]
        dec = outs[t]["flow_hat"].float()[..., :height, :width]
        epe.append(end_point_error(dec, ref))
        zero.append(end_point_error(torch.zeros_like(ref), ref))
    return epe, zero


@torch.no_grad()
def motion_diagnostics(
    video: nn.Module,
    frames: torch.Tensor,
    source_y: Sequence[np.ndarray] | None = None,
    colour: Mapping[str, Any] | None = None,
    oracle: bool = True,
) -> MotionDiagnostics:
    """The motion figures of the VideoCodec ``video`` (eval mode is set) on ``frames`` (T, 3, H, W) RGB in
    [0, 1] on the model's device. ``source_y``: the source's 8-bit luma planes (T of (H, W) uint8), what the
    oracle stream's PSNR-Y is measured against (its reconstruction converted to 4:2:0 with ``colour``: matrix,
    full_range); ``oracle`` False or no ``source_y`` skips the oracle stream."""
    if not is_video_model(video):
        raise ValueError(
            "motion diagnostics need a model with P-frames (a VideoCodec), not an intra-only codec"
        )
    if frames.dim() != 4 or frames.shape[0] < 2:
        raise ValueError(f"frames must be (T >= 2, 3, H, W), got {tuple(frames.shape)}")
    video.eval()
    h, w = frames.shape[-2:]
    padded = pad_clip(frames[None], video.size_multiple)
    outs = video.forward_clip(padded, mode="round")
    epe, zero = flow_errors(video, padded, outs, h, w)
    psnrs, bits = None, None
    if oracle and source_y is not None:
        colour = dict(colour or {})
        matrix, full_range = colour.get("matrix", "bt709"), bool(colour.get("full_range", True))
        psnrs, bits = [], 0.0
        for t, o in enumerate(video.forward_clip(padded, mode="round", oracle_flow=True)):
            rgb = o["x_hat"][0, :, :h, :w].clamp(0, 1).float().cpu()
            psnrs.append(psnr_planes(source_y[t], rgb_to_yuv420(rgb, matrix, full_range)[0].numpy()))
            bits += sum(float((-torch.log2(v.float())).sum()) for v in o["likelihoods_q"].values())
    return MotionDiagnostics(epe, zero, psnrs, bits, int(h * w))


def measure_motion(
    model: str | Path | nn.Module,
    video: str | Path,
    frames: int | None = None,
    device: str | torch.device = "cpu",
    oracle: bool = True,
) -> MotionDiagnostics:
    """:func:`motion_diagnostics` of a model (a .gvcm file, or a loaded VideoCodec used as it is) on the first
    ``frames`` frames of a video file (all when None), read in the file's own colour convention."""
    from gvc.codec.modelfile import load_model_file
    from gvc.data.io import open_video

    net = load_model_file(model, device=device) if isinstance(model, str | Path) else model
    with open_video(video) as reader:
        yuv = list(reader.iter_yuv(0, frames))
        rgb = torch.stack([reader.to_rgb(f) for f in yuv])
        colour = dict(reader.colour)
    param = next(net.parameters(), None)
    rgb = rgb.to(param.device if param is not None else torch.device(device))
    return motion_diagnostics(net, rgb, [f.y for f in yuv], colour, oracle=oracle)
