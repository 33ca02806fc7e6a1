"""Bicubic backward warp, scale-space blur and the random shift/unshift of the residual branch."""

import pytest
import torch
import torch.nn.functional as F

from gvc.data.datasets import make_synthetic_clip
from gvc.models.shift import apply_shift, random_shift, shift_for_frame, undo_shift
from gvc.models.warp import backward_warp, gaussian_blur, pixel_grid, scale_space_blur, scale_space_sigmas


def test_warp_moves_texture_by_known_subpixel_flow():
    """frame_1(p) = frame_0(p + d) for an analytic band-limited texture and a sub-pixel d: the bicubic warp of
    frame_0 by d reproduces frame_1 in the interior (the border uses edge replication, so it is excluded)."""
    clip, flow = make_synthetic_clip(2, 64, 64, max_flow=2.0, noise_std=0.0, max_freq=0.1, seed=1)
    d = flow[1, :, 0, 0]
    assert (d - d.round()).abs().min() > 0.05  # really sub-pixel in both directions
    warped = backward_warp(clip[0:1], flow[1:2])
    err = (warped - clip[1:2])[..., 4:-4, 4:-4].abs()
    assert err.max() < 0.01, err.max()
    # and it is far better than not warping at all, and than warping the other way
    assert (clip[0:1] - clip[1:2])[..., 4:-4, 4:-4].abs().mean() > 10 * err.mean()
    assert (backward_warp(clip[0:1], -flow[1:2]) - clip[1:2])[..., 4:-4, 4:-4].abs().mean() > 10 * err.mean()


def test_warp_integer_flow_is_exact_translation_and_zero_flow_identity():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 20, 24)
    assert torch.equal(backward_warp(x, torch.zeros(2, 2, 20, 24)), x)
    flow = torch.zeros(2, 2, 20, 24)
    flow[:, 0] = 3.0  # x-shift: out(p) = x(p + 3 columns)
    flow[:, 1] = -2.0
    out = backward_warp(x, flow)
    assert torch.equal(out[..., 2:, :-3], x[..., :-2, 3:])
    # border padding: a column beyond the right edge takes the edge column
    assert torch.equal(out[..., 2:, -1], x[..., :-2, -1])


def test_warp_matches_grid_sample_bicubic_border():
    """Same interpolant as F.grid_sample(bicubic, border, align_corners=True), incl. far out-of-frame samples."""
    torch.manual_seed(1)
    x = torch.rand(2, 3, 16, 20)
    flow = torch.randn(2, 2, 16, 20) * 6
    ref = F.grid_sample(x, pixel_grid(flow), mode="bicubic", padding_mode="border", align_corners=True)
    assert (backward_warp(x, flow) - ref).abs().max() < 1e-4


def test_warp_gradient_reaches_flow_and_frame():
    torch.manual_seed(2)
    x = torch.rand(1, 3, 12, 12, requires_grad=True)
    flow = (torch.rand(1, 2, 12, 12) * 2 - 1).requires_grad_(True)
    backward_warp(x, flow).square().sum().backward()
    assert x.grad.abs().sum() > 0 and flow.grad.abs().sum() > 0


def test_scale_space_blur_zero_sigma_identity_and_levels():
    torch.manual_seed(3)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(scale_space_blur(x, torch.zeros(2, 1, 32, 32), 5, 1.0), x)
    assert scale_space_sigmas(5, 1.5) == [0.0, 1.5, 3.0, 6.0, 12.0]
    # sigma exactly at a level gives that level's Gaussian blur
    s = torch.full((2, 1, 32, 32), 2.0)
    assert torch.allclose(scale_space_blur(x, s, 5, 1.0), gaussian_blur(x, 2.0), atol=1e-6)
    # halfway between levels 1 (sigma 1) and 2 (sigma 2): the mean of both (linear along scale)
    s = torch.full((2, 1, 32, 32), 1.5)
    mid = 0.5 * (gaussian_blur(x, 1.0) + gaussian_blur(x, 2.0))
    assert torch.allclose(scale_space_blur(x, s, 5, 1.0), mid, atol=1e-6)
    # beyond the largest level: clamped to it
    s = torch.full((2, 1, 32, 32), 100.0)
    assert torch.allclose(scale_space_blur(x, s, 3, 1.0), gaussian_blur(x, 2.0), atol=1e-6)


def test_scale_space_blur_is_per_pixel_and_reduces_variance():
    torch.manual_seed(4)
    x = torch.rand(1, 3, 32, 32)
    s = torch.zeros(1, 1, 32, 32)
    s[..., :, 16:] = 4.0  # blur the right half only
    out = scale_space_blur(x, s, 5, 1.0)
    assert torch.equal(out[..., :, :16], x[..., :, :16])
    assert out[..., 4:-4, 24:-4].var() < 0.1 * x[..., 4:-4, 24:-4].var()
    # constant images stay constant (normalized kernels, replicate padding)
    c = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(scale_space_blur(c, torch.rand(1, 1, 16, 16) * 10, 5, 1.0), c, atol=1e-6)


def test_scale_space_blur_gradient_reaches_sigma():
    torch.manual_seed(5)
    x = torch.rand(1, 3, 16, 16)
    s = (torch.rand(1, 1, 16, 16) * 3 + 0.2).requires_grad_(True)
    scale_space_blur(x, s, 4, 1.0).square().sum().backward()
    assert s.grad.abs().sum() > 0


def test_shift_then_unshift_is_exact():
    torch.manual_seed(6)
    x = torch.rand(2, 3, 32, 48)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        sh = random_shift(16, generator=g)
        assert all(0 <= v < 16 for v in sh)
        assert torch.equal(undo_shift(apply_shift(x, sh), sh), x)
    y = apply_shift(x, (3, 5))
    assert torch.equal(y[..., 3:, 5:], x[..., :-3, :-5])


def test_shift_for_frame_is_deterministic_in_range_and_varies():
    shifts = [shift_for_frame(i, 16) for i in range(64)]
    assert shifts == [shift_for_frame(i, 16) for i in range(64)]
    assert all(0 <= dy < 16 and 0 <= dx < 16 for dy, dx in shifts)
    assert len(set(shifts)) > 32  # not a constant or a short cycle
    with pytest.raises(ValueError):
        apply_shift(torch.zeros(1, 1, 4, 4), (1, 2, 3))
