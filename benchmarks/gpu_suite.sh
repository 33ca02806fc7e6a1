#!/usr/bin/env bash
# The GPU suite on a lent H100/H200-class GPU, one command, under 8 minutes:
#   bash benchmarks/gpu_suite.sh            # figures into BENCHMARKS.md (section "GPU suite (gpu_suite)")
# It runs benchmarks/gpu_suite.py (training step T=9 bf16 with TFLOP/s and MFU, T=12 checkpointed peak memory,
# 1080p P-frame decode fps, GPU-encode -> CPU-decode check), then the `gpu`-marked tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="${PYTHONPATH:-$PWD}"
export TQDM_DISABLE=1
timeout 420 "$PY" benchmarks/gpu_suite.py --device cuda --benchmarks BENCHMARKS.md
timeout 60 "$PY" -m pytest -q -p no:warnings -m gpu tests/benchmarks/test_gpu_suite.py
