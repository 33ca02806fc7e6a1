# Two commands set everything up: `make demo` and `make test`. Each creates .venv when missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint bench bench-rd bench-rd-c3 bench-parity bench-flow bench-vr bench-crop bench-augment bench-ssf bench-compile bench-ddp bench-rd-quick gpu-suite gpu-bundle clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: $(STAMP) lint
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python -m gvc.demo

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Train the small model (conf/model/small.yaml) at 0.064 / 0.13 / 0.22 bpp, MSE-only runs first (an I+P twin at
# 0.13 and four all-intra models), plus a compressai MeanScaleHyperprior anchor at four lambdas, and measure them on
# held-out clips through real files: inter gain over all-intra, the oracle-flow bound, flow EPE against zero motion,
# drift, P/I bits, PSNR-U/V and plane means, x265 at the same bpp; GAN and MSE runs at the same steps (2000 + 900;
# the recorded run predates that: GAN 500 + 300, ~60-75 min on 2 cores; at equal steps the GAN runs cost ~4x more;
# benchmarks/results/bench_rd_full.json). Then the I+P budget curve: the MSE-only I+P twin with both stages at
# 2k / 5k / 10k steps on held-out clips and their darkened / saturated copies (~2 h on 2 shared cores;
# benchmarks/results/bench_ip_budget.json). Finished trainings and codings are skipped on a rerun.
bench-rd: $(STAMP)
	$(BIN)/python benchmarks/bench_operating_points.py --parts points --markdown --out-json benchmarks/results/bench_rd_full.json
	$(BIN)/python benchmarks/bench_ip_budget.py --out-json benchmarks/results/bench_ip_budget.json
	$(BIN)/python benchmarks/render.py bench_rd_full bench_ip_budget

# The quantization modes and encode-time refinement at 0.13 (~70 min; benchmarks/results/bench_rd_c3.json).
bench-rd-c3: $(STAMP)
	$(BIN)/python benchmarks/bench_operating_points.py --parts quant refine --markdown --out-json benchmarks/results/bench_rd_c3.json
	$(BIN)/python benchmarks/render.py bench_rd_c3

# gvc's small I-frame codecs against compressai's MeanScaleHyperprior(32, 16): one fixed-lambda loop, 2000 steps,
# four lambdas each, held-out frames through real compress() (~40 min on 2 cores; bench_iframe_parity.json).
# Then the trainer against a plain loop (bench_trainer_parity): train.py and a 20-line loop on the same DataModule,
# seed and crops, to 2k / 5k / 10k / 20k steps, two seeds each, plus the GAN twin to 10k; held-out clips (and
# darkened / saturated copies) through real files (~2.5 h on 2 cores; finished runs are skipped on a rerun;
# benchmarks/results/bench_trainer_parity.json).
bench-parity: $(STAMP)
	$(BIN)/python benchmarks/bench_iframe_parity.py --markdown --out-json benchmarks/results/bench_iframe_parity.json
	$(BIN)/python benchmarks/bench_trainer_parity.py --markdown --out-json benchmarks/results/bench_trainer_parity.json
	$(BIN)/python benchmarks/bench_trainer_parity.py --twins trainer_gan --seeds 1234 --budgets 2000 5000 10000 \
		--markdown --out-json benchmarks/results/bench_trainer_parity.json
	$(BIN)/python benchmarks/render.py bench_iframe_parity bench_trainer_parity

# The small flow codec alone on DIS flow: decoded-flow EPE vs zero motion on held-out pairs (~30 min on 2 cores;
# benchmarks/results/bench_flow_codec.json). Then stage 2 with and without the flow pre-training phase
# (stage.flow_pretrain_steps), decoded-flow EPE through real files (~40 min; bench_flow_pretrain.json).
bench-flow: $(STAMP)
	$(BIN)/python benchmarks/bench_flow_codec.py --markdown --out-json benchmarks/results/bench_flow_codec.json
	$(BIN)/python benchmarks/bench_flow_pretrain.py --markdown --out-json benchmarks/results/bench_flow_pretrain.json
	$(BIN)/python benchmarks/render.py bench_flow_codec bench_flow_pretrain

# One variable-rate small I-frame codec (rate=multi) against three fixed-rate ones (0.064 / 0.13 / 0.22) trained for
# the same 10k steps: its curve beside their points, BD-rates against them and x265, and `gvc encode --bpp` on
# held-out clips (~50 min on 2 cores; finished trainings are skipped; benchmarks/results/bench_variable_rate.json).
# Then the GAN twin at equal total steps: fixed 1.5k each, variable-rate 4.5k, two trainings at once (~75 min on
# 2 shared cores; NOT converged; benchmarks/results/bench_variable_rate_gan.json).
bench-vr: $(STAMP)
	$(BIN)/python benchmarks/bench_variable_rate.py --out-json benchmarks/results/bench_variable_rate.json
	$(BIN)/python benchmarks/bench_variable_rate.py --loss gan --jobs 2 --out-json benchmarks/results/bench_variable_rate_gan.json
	$(BIN)/python benchmarks/render.py bench_variable_rate

# The trainer twin of bench-parity on 128x128 crops (batch 1: the same pixels per step) against its 64x64 crops, at
# 10k and 20k steps: held-out / training-crop rate and the hyperprior's calibration on whole frames (~25 min on 2
# cores; reuses bench-parity's 64-crop models; benchmarks/results/bench_crop_size.json).
bench-crop: $(STAMP)
	$(BIN)/python benchmarks/bench_crop_size.py --out-json benchmarks/results/bench_crop_size.json
	$(BIN)/python benchmarks/render.py bench_crop_size

# Photometric augmentation (+data/augment=photometric) measured: bench-parity's trainer twin trained again with it
# (two seeds, 10k steps; the plain twin's models are reused) on the held-out clips and their darkened / saturated
# copies (~25 min on 2 cores; benchmarks/results/bench_augment.json).
bench-augment: $(STAMP)
	$(BIN)/python benchmarks/bench_augment.py --out-json benchmarks/results/bench_augment.json
	$(BIN)/python benchmarks/render.py bench_augment

# compressai's ScaleSpaceFlow (ssf2020) at three lambdas against bench-rd's MSE-only I+P and its all-intra curve, the
# same frames, crops, seed and steps (two stages each), at equal bpp on held-out consecutive frames through real
# files. Recorded at bench-rd-quick's budget (600 + 300 steps; NOT converged; ~1 h on 2 shared cores, ssf2020 is
# 34 M parameters); without --quick, bench-rd's (2000 + 900). Finished trainings and codings are skipped
# (benchmarks/results/bench_ssf_yardstick.json).
bench-ssf: $(STAMP)
	$(BIN)/python benchmarks/bench_ssf_yardstick.py --quick --out-json benchmarks/results/bench_ssf_yardstick.json
	$(BIN)/python benchmarks/render.py bench_ssf_yardstick

# train.py's stage-1 step eager, with channels_last, torch.compile and both (smoke and small models, a cold
# compilation in each compile row; ~20-25 min on 2 shared cores; benchmarks/results/bench_compile.json).
bench-compile: $(STAMP)
	$(BIN)/python benchmarks/bench_compile.py --out-json benchmarks/results/bench_compile.json
	$(BIN)/python benchmarks/render.py bench_compile

# train.py's stage-1 step on one CPU process against trainer=ddp with two (gloo): samples/s and whether the ranks
# stay identical (smoke and small models; ~10 min on 2 shared cores; benchmarks/results/bench_ddp.json).
bench-ddp: $(STAMP)
	$(BIN)/python benchmarks/bench_ddp.py --out-json benchmarks/results/bench_ddp.json
	$(BIN)/python benchmarks/render.py bench_ddp

# bench-rd at 600 + 300 steps for every run, GAN and MSE alike (NOT converged; ~55 min on 2 shared cores; reuses
# bench-ssf's MSE runs; benchmarks/results/bench_rd_quick.json).
bench-rd-quick: $(STAMP)
	$(BIN)/python benchmarks/bench_operating_points.py --quick --markdown --out-json benchmarks/results/bench_rd_quick.json
	$(BIN)/python benchmarks/render.py bench_rd_quick

# on a CUDA machine: training step (TFLOP/s, MFU), checkpointed T=12 memory, 1080p decode fps, GPU->CPU decoding
gpu-suite: $(STAMP)
	PYTHON=$(BIN)/python bash benchmarks/gpu_suite.sh

# the GPU learning run's self-contained bundle (.gpu_bundle/: wheels for the device's Python 3.12 and the clips as
# xz-compressed shards; needs the package registry): prints its size and the device command (benchmarks/gpu_learn.sh)
gpu-bundle: $(STAMP)
	$(BIN)/python benchmarks/gpu_learn.py bundle --out .gpu_bundle

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
