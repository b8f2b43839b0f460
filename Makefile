# Two commands on a fresh machine: `make demo` and `make test`. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PKGS := ffmpeg espeak-ng dataset-fashion-mnist chromium chromium-driver fonts-noto-color-emoji
CACHE ?= $(or $(TIMM_SPACE_CACHE),$(HOME)/.cache/timm-space)
LITE0 := $(CACHE)/weights/tf_efficientnet_lite0.in1k.safetensors
DEMO_OUT ?= outputs/fashion-mnist-lite0
# The measured recipe (docs/benchmarks.md): 64 px from the packaged ImageNet weights, the head fitted on frozen features
# first (the trainer's own choice on a CPU), then the steps planned to fit the budget (train + final evaluation).
RECIPE_FLAGS ?= --img-size 64 --crop-pct 1.0 --scale 0.8 1 --batch-size 64 --lr 2e-3 --val-pct 0.1 --eval-batch-size 256
# `make train`: the full-quality run, test-time flip reported beside the plain numbers.
TRAIN_FLAGS ?= $(RECIPE_FLAGS) --tta flip --time-budget 14.5
# `make demo`: the same recipe within DEMO_BUDGET minutes, without TTA (its time goes to training); the audio model
# within AUDIO_BUDGET minutes. `make train TRAIN_FLAGS="$(DEMO_FLAGS)"` is exactly the demo's image step.
DEMO_BUDGET ?= 7
DEMO_FLAGS ?= $(RECIPE_FLAGS) --time-budget $(DEMO_BUDGET)
AUDIO_BUDGET ?= 5

.PHONY: install system-deps test test-fast test-timing-slow demo train app smoke lint weights clean bench-app screenshots

install: system-deps $(STAMP)

# Debian packages: ffmpeg (audio decoding), espeak-ng (spoken digits), Fashion-MNIST (embedded images),
# chromium + chromium-driver (the browser test drives Debian's chromium; Playwright never downloads one)
# and an emoji font (the app's status lines).
system-deps:
	@missing=""; for p in $(DEBIAN_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing Debian packages:$$missing"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "Please install these system packages:$$missing (Debian/Ubuntu names) and re-run."; exit 1; \
	fi

# The exact pins (requirements.txt), then the project itself, editable and without re-resolving dependencies: its
# console scripts (timm-space-train, …) and `python trainer/train.py` / `accelerate launch` / `python app.py` then
# import `trainer` and `space` from this checkout, from any working directory.
$(STAMP): requirements.txt tests/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install -q -r requirements.txt -r tests/requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

weights: install
	$(PY) -m trainer.weights --out $(LITE0)

# Everything (what CI runs).
test: install
	$(PY) -m pytest -q

# The edit-test loop: the tests not marked `slow` (no multi-process, resume, browser or end-to-end Hub runs).
test-fast: install
	$(PY) -m pytest -q -m "not slow"

# The tests that assert wall-clock behaviour, on a slowed machine: pinned to one core that a CPU-bound sibling process
# shares (docs/testing.md). Run it whenever you touch timed code; CI runs `make test` only.
test-timing-slow: install
	$(PY) -m tests.helpers.slowed $(PY) -m pytest -q -m timing -p no:cacheprovider

# ruff, and the import contracts of pyproject.toml (layers, no cycles, what space/ may import).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The real CLI for 4 steps on the embedded data: the quickest proof that the whole path works.
smoke: install
	$(PY) trainer/train.py --dataset fashion-mnist --model test_resnet --no-pretrained --max-steps 4 \
		--max-train-samples 256 --max-eval-samples 128 --img-size 32 --output-dir outputs/smoke --overwrite-output-dir

# Audio: the embedded spoken digits (espeak-ng, split by voice and accent; ~70 s once) and the measured recipe (docs/benchmarks.md):
# at most 4 epochs, as many as fit AUDIO_BUDGET minutes.
AUDIO_OUT ?= outputs/spoken-digits
AUDIO_FLAGS ?= --clip-seconds 1.2 --epochs 4 --batch-size 64 --lr 2e-3 --warmup-epochs 0.3 --eval-batch-size 256 \
	--speed 0.1 --reverb-prob 0.3 --group-column group --time-budget $(AUDIO_BUDGET)
.PHONY: spoken-digits train-audio bench-frontend bench-train

spoken-digits: install
	$(PY) -m trainer.data.builtin.spoken_digits

train-audio: weights spoken-digits
	$(PY) trainer/train.py --dataset spoken-digits --model tf_efficientnet_lite0 --pretrained-file $(LITE0) \
		$(AUDIO_FLAGS) --output-dir $(AUDIO_OUT) --overwrite-output-dir

# Batched torch log-mel vs librosa (STFT + mel + dB): bench/results/frontend_<device>_<date>.json.
bench-frontend: install
	$(PY) bench/bench_frontend.py

# The embedded default at full quality (docs/benchmarks.md reports its numbers).
train: weights
	$(PY) trainer/train.py --dataset fashion-mnist --model tf_efficientnet_lite0 --pretrained-file $(LITE0) \
		$(TRAIN_FLAGS) --output-dir $(DEMO_OUT) --overwrite-output-dir

# Multi-label: the synthetic Fashion-MNIST mosaics (2x2 items, labelled with the classes they hold; docs/multi-label.md).
MOSAIC_OUT ?= outputs/fashion-mosaics-lite0
MOSAIC_FLAGS ?= --img-size 64 --crop-pct 1.0 --scale 0.8 1 --batch-size 64 --lr 2e-3 --val-pct 0.1 \
	--eval-batch-size 256 --time-budget 10
.PHONY: train-mosaics

train-mosaics: weights
	$(PY) trainer/train.py --dataset fashion-mosaics --model tf_efficientnet_lite0 --pretrained-file $(LITE0) \
		$(MOSAIC_FLAGS) --output-dir $(MOSAIC_OUT) --overwrite-output-dir

# `make demo`: trains what is missing at demo size, then serves both models. Demo size = the image recipe within
# DEMO_BUDGET minutes (DEMO_FLAGS), the audio recipe within AUDIO_BUDGET (docs/benchmarks.md). Before serving it says
# whether each model is undertrained (trainer/checkpoint/quality.py). With both checkpoints present nothing but that
# check and the app run (no install or data checks), so it serves within seconds.
demo:
	@[ -f $(STAMP) ] || $(MAKE) --no-print-directory install
	@[ -f $(DEMO_OUT)/manifest.json ] || $(MAKE) --no-print-directory train TRAIN_FLAGS="$(DEMO_FLAGS)"
	@[ -f $(AUDIO_OUT)/manifest.json ] || $(MAKE) --no-print-directory train-audio
	@$(PY) -m trainer.checkpoint.quality $(DEMO_OUT) $(AUDIO_OUT)
	$(PY) app.py --model $(DEMO_OUT) --audio-model $(AUDIO_OUT)

app: install
	$(PY) app.py --model $(DEMO_OUT) --audio-model $(AUDIO_OUT)

# Training img/s side by side (~35 min on 2 cores): ours vs timm's own train.py, real vs synthetic, 1 vs 2
# processes, fast path vs eager. TIMM_TRAIN: train.py of a pytorch-image-models checkout (run, never copied here).
bench-train: install
	@[ -n "$(TIMM_TRAIN)" ] || { echo "set TIMM_TRAIN=/path/to/pytorch-image-models/train.py (pair a runs timm's own script)"; exit 2; }
	$(PY) bench/bench_train.py --timm-train $(TIMM_TRAIN)

# Load test of the app through gradio_client (~4 min; BENCH_FLAGS=--quick for ~45 s): bench/results/app_<date>.json.
bench-app: install
	$(PY) bench/bench_app.py $(BENCH_FLAGS)

# The browser test against the demo checkpoint (the smoke run if there is none); PNGs in bench/results/screenshots/.
screenshots: install
	TIMM_SPACE_SCREENSHOT_DIR=bench/results/screenshots \
	$(if $(wildcard $(DEMO_OUT)/config.json),TIMM_SPACE_BROWSER_MODEL=$(DEMO_OUT)) $(PY) -m pytest -q tests/test_browser.py

clean:
	rm -rf outputs/smoke .pytest_cache .ruff_cache
