"""gvc.eval.motion: decoded-flow EPE against the reference flow on the frame area, the zero-motion EPE and the
oracle-flow bound, on a synthetic clip whose motion is known."""

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gvc.data.datasets import make_synthetic_clip
from gvc.data.io import write_y4m
from gvc.eval.motion import (
    end_point_error,
    flow_errors,
    measure_motion,
    motion_diagnostics,
    pad_clip,
)
from gvc.models.iframe import IFrameCodec
from gvc.models.video import VideoCodec

CONF = Path(__file__).resolve().parents[2] / "conf" / "model" / "smoke.yaml"
SIZE = 66  # not a multiple of the model's 64: the frame is padded to 128, and the padding must not count


def smoke_video() -> VideoCodec:
    torch.manual_seed(0)
    cfg = OmegaConf.to_container(OmegaConf.load(CONF), resolve=True)
    video = VideoCodec(cfg["iframe"], cfg["pframe"], {**cfg["flow"], "preset": "medium"})
    video.pframe.init_from_iframe(video.iframe)
    return video.eval()


@pytest.fixture(scope="module")
def shifted():
    """A 3-frame 66x66 textured clip, each frame a known translation of the previous one (no noise)."""
    clip, flow = make_synthetic_clip(3, SIZE, SIZE, max_flow=2.0, noise_std=0.0, seed=6)
    return clip, flow


def test_end_point_error_is_the_mean_vector_length():
    ref = torch.zeros(2, 2, 4, 5)
    ref[:, 0], ref[:, 1] = 3.0, 4.0
    assert end_point_error(ref, ref) == 0.0
    assert end_point_error(torch.zeros_like(ref), ref) == pytest.approx(5.0)
    half = ref.clone()
    half[..., :2, :] = 0.0  # 2 of 4 rows wrong by 5 px
    assert end_point_error(half, ref) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="B, 2, H, W"):
        end_point_error(ref[:, :1], ref[:, :1])


def test_pad_clip_replicates_the_last_row_and_column():
    clip = torch.rand(1, 2, 3, 5, 7)
    out = pad_clip(clip, 4)
    assert out.shape == (1, 2, 3, 8, 8)
    assert torch.equal(out[..., :5, :7], clip)
    assert torch.equal(out[..., 7, :7], clip[..., 4, :]) and torch.equal(out[..., :5, 7], clip[..., :, 6])


def test_zero_motion_epe_is_the_known_shift_on_the_frame_area(shifted):
    """The reference flow of a clip translated by d_t per frame has magnitude |d_t|: the zero-motion EPE of
    frame t is |d_t| (the estimator's error is small on this analytic texture), measured over the 66x66 frame
    only (over the padded 128x128 area, where the replicated border does not move with it, it is 0.17 and 0.32 px off)."""
    clip, flow = shifted
    diag = motion_diagnostics(smoke_video(), clip, oracle=False)
    assert len(diag.flow_epe) == len(diag.zero_motion_epe) == 2
    for t in (1, 2):
        shift = float(flow[t, :, 0, 0].norm())
        assert shift > 0.5
        assert diag.zero_motion_epe[t - 1] == pytest.approx(shift, abs=0.1), (t, shift)
    assert all(np.isfinite(diag.flow_epe)) and min(diag.flow_epe) >= 0.0
    assert diag.oracle_psnr_y is None and diag.summary()["oracle_psnr_y"] is None
    s = diag.summary()
    assert s["flow_epe_ratio"] == pytest.approx(s["flow_epe"] / s["zero_motion_epe"])


def test_the_reference_flow_itself_has_zero_epe(shifted):
    """The oracle stream decodes with the reference flow: flow_errors scores its flow_hat 0 px, while the same
    clip's zero-motion EPE stays the shift."""
    clip, _ = shifted
    video = smoke_video()
    padded = pad_clip(clip[None], video.size_multiple)
    with torch.no_grad():
        outs = video.forward_clip(padded, mode="round", oracle_flow=True)
    epe, zero = flow_errors(video, padded, outs, SIZE, SIZE)
    assert epe == [0.0, 0.0]
    assert min(zero) > 0.5


def test_oracle_bound_from_a_file(shifted, tmp_path):
    """measure_motion reads a video file and a model file: the oracle stream's PSNR-Y per frame (I-frame
    included) against the file's own luma, and its rate estimate in bits per pixel."""
    from gvc.codec.modelfile import save_model_file

    clip, _ = shifted
    video = smoke_video()
    model = tmp_path / "m.gvcm"
    save_model_file(model, video)
    path = tmp_path / "clip.y4m"
    write_y4m(path, list(clip))
    diag = measure_motion(model, path, frames=3)
    assert len(diag.oracle_psnr_y) == 3 and all(0.0 < p < 99.0 for p in diag.oracle_psnr_y)
    assert diag.pixels == SIZE * SIZE and diag.oracle_bits > 0
    s = diag.summary()
    assert s["oracle_bpp_est"] == pytest.approx(diag.oracle_bits / (3 * SIZE * SIZE))
    assert s["oracle_psnr_y"] == pytest.approx(np.mean(diag.oracle_psnr_y))
    two = measure_motion(model, path, frames=2, oracle=False)
    assert two.flow_epe == pytest.approx(diag.flow_epe[:1]) and two.oracle_psnr_y is None


def test_intra_only_models_are_refused():
    cfg = OmegaConf.to_container(OmegaConf.load(CONF), resolve=True)
    iframe = IFrameCodec(**{k: v for k, v in cfg["iframe"].items() if k != "_target_"})
    with pytest.raises(ValueError, match="P-frames"):
        motion_diagnostics(iframe, torch.rand(2, 3, 64, 64))


def test_block_mean_flow_keeps_coarse_motion_and_drops_finer():
    """A constant flow survives block averaging exactly; a checkerboard finer than the block does not."""
    from gvc.eval.motion import block_mean_flow, end_point_error

    const = torch.full((1, 2, 40, 56), 1.5)
    assert end_point_error(block_mean_flow(const, 16), const) == pytest.approx(0.0, abs=1e-6)
    fine = const.clone()
    fine[..., ::2, :] *= -1  # +-1.5 px on alternate rows: zero mean in every tile
    assert end_point_error(block_mean_flow(fine, 16), fine) == pytest.approx(1.5 * 2**0.5, rel=1e-4)
