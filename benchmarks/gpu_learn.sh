#!/usr/bin/env bash
# The GPU learning run (issue 17 item 4) on a lent H100/H200-class GPU, from the bundle `make gpu-bundle` builds:
# stage 1 and stage 2 of the mid-size model (+experiment=gpu_learn_iframe / gpu_learn_pframe) on the bundled
# clips' shards, then the held-out clips through `gvc encode` / `gvc decode`; figures into $OUT (or
# outputs/gpu_learn): result.json, section.txt (the BENCHMARKS.md section), model.gvcm, the two training logs.
# On the device (tool `run`, carry [".gpu_bundle"], timeout_s 560), the wheels first:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .gpu_bundle/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && bash benchmarks/gpu_learn.sh
# Back here: python benchmarks/gpu_learn.py markdown result.json --benchmarks BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="${PYTHONPATH:-$PWD}"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 WANDB_MODE=offline
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 470 "$PY" benchmarks/gpu_learn.py run --bundle .gpu_bundle "$@"
