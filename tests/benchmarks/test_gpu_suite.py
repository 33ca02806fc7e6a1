"""benchmarks/gpu_suite.py: its tiny CPU form runs in the default suite (so the GPU suite cannot rot), and on a
CUDA machine a GPU-encoded file decodes on the CPU to the same latents and frames (marker `gpu`)."""

import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu_suite  # noqa: E402


def test_tiny_suite_runs_on_cpu_and_writes_its_section(tmp_path):
    """What this proves: every figure of the suite is produced by the same driver at toy sizes on the CPU:
    training step time and FLOPs (TFLOP/s; MFU n/a without a GPU peak), the checkpointed T step with its peak
    memory, P-frame decode fps with an entropy share in (0, 1), and the cross-device check; its markdown section
    replaces itself in a BENCHMARKS.md-style file without touching the other sections."""
    res = gpu_suite.run(gpu_suite.TINY, torch.device("cpu"))
    tr, ck = res["train"], res["train_checkpointed"]
    assert (
        tr["T"] == gpu_suite.TINY.t_train and ck["T"] == gpu_suite.TINY.t_checkpoint and ck["checkpointing"]
    )
    assert (
        tr["step_s"] > 0
        and tr["flops"] > 1e6
        and tr["tflops"] == pytest.approx(tr["flops"] / tr["step_s"] / 1e12)
    )
    assert tr["mfu"] is None and res["peak_tflops"] is None
    assert ck["peak_mib"] > 0 and 0 <= ck["flow_share"] < 1
    de = res["decode"]
    assert de["size"] == "192x128" and de["p_frames"] == gpu_suite.TINY.decode_frames - 1
    assert de["p_fps"] > 0 and 0 < de["entropy_share"] < 1
    cr = res["cross_device"]
    assert cr["latents_identical"] and cr["max_abs_diff"] == 0 and cr["identical_8bit_share"] == 1.0

    text = gpu_suite.markdown(res)
    assert text.startswith(f"## {gpu_suite.TITLE}\n") and "| smoke | 1 x 3 x 3 x 64 x 64 | off |" in text
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# gvc benchmarks\n\n## A (x)\n\nfirst\n\n## B (y)\n\nlast\n")
    gpu_suite.write_section(md, text)
    gpu_suite.write_section(md, text.replace("| smoke |", "| again |"))
    out = md.read_text()
    assert out.count(f"## {gpu_suite.TITLE}") == 1 and "| again |" in out and "| smoke |" not in out
    assert out.startswith("# gvc benchmarks\n\n## A (x)\n\nfirst\n\n## B (y)\n\nlast\n")


def test_peak_table_knows_the_lent_gpus():
    names = dict(gpu_suite.PEAK_BF16_TFLOPS)
    assert names["H200"] == names["H100"] == 989.4 and names["H100 PCIe"] < names["H100"]
    assert gpu_suite.peak_tflops(torch.device("cpu")) is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_encoded_file_decodes_on_cpu(tmp_path):
    """What this proves: a .gvc written on the GPU (portable entropy placement, the default) decodes on the CPU
    to bit-identical latents in every frame, and to the GPU decoder's frames within float rounding (no drift
    over the P-frames: symbols never depend on the device)."""
    cr = gpu_suite.cross_device(gpu_suite.TINY, torch.device("cuda"), tmp_path, decode_device="cpu")
    assert cr["encode_device"].startswith("cuda") and cr["decode_device"] == "cpu"
    assert cr["latents_identical"]
    assert cr["max_abs_diff"] < 1e-3 and cr["identical_8bit_share"] > 0.999
