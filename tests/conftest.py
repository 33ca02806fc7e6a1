"""Shared test set-up.

Tests run tiny models on a 2-core CPU: one intra-op thread per process is 10-30x faster for these tensor sizes
than two threads contending (measured on the tiny smoke models), and leaves the other core to subprocesses.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import torch  # noqa: E402

torch.set_num_threads(1)
