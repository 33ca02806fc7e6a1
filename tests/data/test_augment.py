"""Photometric augmentation (gvc.data.augment): the jitter scales Y' and Cb/Cr exactly as documented, its draws
are a function of the sample's generator, the training datasets apply it after the same start and crop, and bad
settings are one ConfigError naming the key."""

from __future__ import annotations

import pytest
import torch

from gvc.data import sample_clips
from gvc.data.augment import PhotometricJitter, jitter
from gvc.data.color import rgb_to_yuv444
from gvc.data.datamodule import from_conf
from gvc.data.datasets import VideoClipDataset
from gvc.data.sampling import SampleKey
from gvc.errors import ConfigError


def _clip(seed: int = 0) -> torch.Tensor:
    """(2, 3, 16, 16) R'G'B' well inside (0.2, 0.7): no value reaches a clamp under the factors below."""
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.5 * torch.rand(2, 3, 16, 16, generator=g)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_brightness_scales_luma_about_black_and_chroma_about_neutral(matrix):
    x = _clip()
    y = jitter(x, brightness=0.6, saturation=1.0, matrix=matrix)
    assert torch.allclose(y, 0.6 * x, atol=1e-6)  # R'G'B' x b
    a, b = rgb_to_yuv444(x, matrix, True), rgb_to_yuv444(y, matrix, True)
    assert torch.allclose(b[:, 0], 0.6 * a[:, 0], atol=1e-4)  # Y' (full range: black at 0) x b
    assert torch.allclose(b[:, 1:] - 128, 0.6 * (a[:, 1:] - 128), atol=1e-3)  # Cb, Cr about neutral x b


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_saturation_keeps_luma_and_scales_chroma_about_neutral(matrix):
    x = _clip(1)
    y = jitter(x, brightness=1.0, saturation=1.3, matrix=matrix)
    a, b = rgb_to_yuv444(x, matrix, True), rgb_to_yuv444(y, matrix, True)
    assert torch.allclose(b[:, 0], a[:, 0], atol=1e-3)  # the clip's own matrix keeps Y' exactly
    assert torch.allclose(b[:, 1:] - 128, 1.3 * (a[:, 1:] - 128), atol=1e-3)
    grey = torch.full((1, 3, 4, 4), 0.4)
    assert torch.equal(jitter(grey, 1.0, 1.7, matrix), grey)  # neutral stays neutral


def test_the_result_is_clamped_to_the_unit_range():
    x = torch.tensor([0.9, 0.05, 0.5]).view(1, 3, 1, 1)
    y = jitter(x, 1.25, 1.5)
    assert y.min() >= 0 and y.max() <= 1 and y[0, 0, 0, 0] == 1.0 and y[0, 1, 0, 0] == 0.0


def test_draws_follow_the_generator_and_stay_in_range():
    aug = PhotometricJitter(prob=1.0, brightness=[0.5, 1.25], saturation=[0.6, 1.5])
    draws = [aug.draw(torch.Generator().manual_seed(s)) for s in range(200)]
    assert all(0.5 <= b <= 1.25 and 0.6 <= s <= 1.5 for b, s in draws)
    assert min(b for b, _ in draws) < 0.6 and max(b for b, _ in draws) > 1.1  # the whole range is used
    assert aug.draw(torch.Generator().manual_seed(7)) == draws[7]
    off = PhotometricJitter(prob=0.0, brightness=[0.5, 1.25], saturation=[0.6, 1.5])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x = _clip()
    assert off(x, g1) is x
    aug(x, g2)  # applied or not, three numbers are drawn: what follows does not depend on the jitter
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    half = PhotometricJitter(prob=0.5, brightness=[0.5, 1.25], saturation=[0.6, 1.5])
    applied = sum(half.draw(torch.Generator().manual_seed(s)) is not None for s in range(400))
    assert 150 < applied < 250


class _Recording(PhotometricJitter):
    """The jitter, remembering the factors it drew."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.drawn: list = []

    def draw(self, rng):
        factors = super().draw(rng)
        self.drawn.append(factors)
        return factors


def test_the_training_dataset_jitters_its_own_crop_and_validation_never():
    clips = [sample_clips()["carphone_pristine"]]
    aug = _Recording(prob=1.0, brightness=[0.5, 1.25], saturation=[0.6, 1.5])
    plain = VideoClipDataset(clips, clip_length=2, crop_size=32, train=True, samples_per_video=3, seed=5)
    jittered = VideoClipDataset(
        clips, clip_length=2, crop_size=32, train=True, samples_per_video=3, seed=5, augment=aug
    )
    matrix = plain.videos[0]["color"]["matrix"]
    for key in (SampleKey(0, 0), SampleKey(2, 1)):
        got = jittered[key]
        b, s = aug.drawn[-1]
        assert torch.allclose(got, jitter(plain[key], b, s, matrix), atol=1e-6)  # the same start and crop
        assert torch.equal(jittered[key], got) and aug.drawn[-1] == (
            b,
            s,
        )  # a function of (seed, epoch, index)
    assert aug.drawn[0] != aug.drawn[-1]
    val = VideoClipDataset(clips, clip_length=2, crop_size=32, train=False, augment=aug)
    ref = VideoClipDataset(clips, clip_length=2, crop_size=32, train=False)
    assert torch.equal(val[0], ref[0])


def test_the_datamodule_builds_the_jitter_from_its_config_node_and_refuses_bad_values():
    node = {"_target_": "gvc.data.augment.PhotometricJitter", "prob": 0.5, "brightness": [0.5, 1.25],
            "saturation": [0.6, 1.5]}  # fmt: skip
    dm = from_conf("sample", augment=node, num_workers=0)
    assert isinstance(dm.augment, PhotometricJitter) and dm.augment.brightness == (0.5, 1.25)
    dm.setup("fit")
    assert dm.train_set.augment is dm.augment and dm.val_set.augment is None
    for bad, needle in (
        ({"prob": 1.5}, "data.augment.prob must be in [0, 1]"),
        ({"brightness": [0.0, 1.0]}, "data.augment.brightness must be [low, high] with 0.0 < low"),
        ({"brightness": [1.2, 0.8]}, "data.augment.brightness"),
        ({"saturation": [-0.1, 1.0]}, "data.augment.saturation must be [low, high] with 0.0 <= low"),
        ({"saturation": "high"}, "data.augment.saturation"),
    ):
        with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
            from_conf("sample", augment={**node, **bad})
    with pytest.raises(ConfigError, match="data.augment._target_ must be"):
        from_conf("sample", augment={**node, "_target_": "torch.nn.Identity"})
    with pytest.raises(ConfigError, match="unknown config key data.augment.contrast"):
        from_conf("sample", augment={**node, "contrast": 1.2})
    with pytest.raises(ConfigError, match="not synthetic"):
        from_conf("synthetic", augment=node)
