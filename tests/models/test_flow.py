"""Frozen flow estimators: DIS recovers known motion with our backward-flow convention; RAFT needs a file."""

import pytest
import torch

from gvc.data.datasets import make_synthetic_clip
from gvc.errors import ConfigError, MissingWeightsError
from gvc.models.flow import DISFlow, RAFTFlow, build_flow_estimator, flow_spec
from gvc.models.warp import backward_warp
from tests._training_helpers import dis_flow


def test_dis_recovers_known_translation_in_backward_convention():
    """A textured pair with a known sub-pixel translation: DIS's flow matches it within 0.2 px in the interior,
    with the sign convention target(p) = ref(p + flow(p)) (so warping ref by it predicts the target)."""
    clip, flow = make_synthetic_clip(3, 96, 96, max_flow=2.0, noise_std=0.0, seed=1)
    est = dis_flow("medium")
    ref, tgt = clip[0:2], clip[1:3]  # a batch of two pairs with different motions
    f = est(ref, tgt)
    assert f.shape == (2, 2, 96, 96) and f.dtype == torch.float32 and not f.requires_grad
    err = (f - flow[1:3])[..., 8:-8, 8:-8]
    assert err.abs().mean() < 0.1 and err.abs().max() < 0.2, (err.abs().mean(), err.abs().max())
    warp_err = (backward_warp(ref, f) - tgt)[..., 8:-8, 8:-8].abs().mean()
    assert warp_err < 0.3 * (ref - tgt)[..., 8:-8, 8:-8].abs().mean()


def test_dis_is_frozen_and_checks_shapes():
    est = dis_flow("fast")
    assert list(est.parameters()) == []
    est.train()
    assert not est.training
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    assert not est(x, x.flip(-1)).requires_grad
    with pytest.raises(ValueError):
        est(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 16))
    with pytest.raises(ConfigError):
        dis_flow("slowest")


def test_build_flow_estimator_from_spec_roundtrip():
    est = build_flow_estimator(
        {"_target_": "gvc.models.flow.DISFlow", "preset": "ultrafast", "patch_size": 12}
    )
    assert isinstance(est, DISFlow) and est.config["patch_size"] == 12
    again = build_flow_estimator(flow_spec(est))
    assert again.config == est.config
    with pytest.raises(ConfigError):
        build_flow_estimator({"class": "os.system"})


def test_raft_missing_weights_names_the_file(tmp_path):
    missing = tmp_path / "raft_small_C_T_V2-01064c6d.pth"
    with pytest.raises(MissingWeightsError) as e:
        RAFTFlow(weights_path=str(missing), size="small", num_flow_updates=12, min_size=128)
    assert str(missing) in str(e.value) and "download.pytorch.org" in str(e.value)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="bad.pth"):
        RAFTFlow(weights_path=str(bad), size="large", num_flow_updates=12, min_size=128)


def test_raft_loads_a_state_dict_file_and_returns_full_size_flow(tmp_path):
    """A (randomly initialised) raft_small state dict written to disk loads; odd sizes are padded to /8 and
    the flow is cropped back. (Accuracy needs the real weights, which tests do not have.)"""
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    est = RAFTFlow(weights_path=str(path), size="small", num_flow_updates=2, min_size=128)
    assert all(not p.requires_grad for p in est.parameters())
    f = est(torch.rand(1, 3, 60, 68), torch.rand(1, 3, 60, 68))
    assert f.shape == (1, 2, 60, 68) and torch.isfinite(f).all()
    with pytest.raises(MissingWeightsError):  # a small-model file is not a large model
        RAFTFlow(weights_path=str(path), size="large", num_flow_updates=12, min_size=128)
