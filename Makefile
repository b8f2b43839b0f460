# Two commands on a fresh machine: `make demo` and `make test`. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PKGS := ffmpeg espeak-ng dataset-fashion-mnist
CACHE ?= $(or $(TIMM_SPACE_CACHE),$(HOME)/.cache/timm-space)
LITE0 := $(CACHE)/weights/tf_efficientnet_lite0.in1k.safetensors
DEMO_OUT ?= outputs/fashion-mnist-lite0
# The measured full-quality recipe (README "Numbers"): 2 epochs at 48 px from the packaged ImageNet weights.
TRAIN_FLAGS ?= --img-size 48 --crop-pct 1.0 --epochs 2 --batch-size 64 --lr 1e-3 --warmup-epochs 0.2 \
	--scale 0.8 1 --val-pct 0.1 --eval-batch-size 256

.PHONY: install system-deps test demo train app smoke lint weights clean

install: system-deps $(STAMP)

# Debian packages: ffmpeg (audio decoding), espeak-ng (spoken digits), Fashion-MNIST (embedded images).
system-deps:
	@missing=""; for p in $(DEBIAN_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing Debian packages:$$missing"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "Please install these system packages:$$missing (Debian/Ubuntu names) and re-run."; exit 1; \
	fi

$(STAMP): requirements.txt tests/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -r tests/requirements.txt
	touch $(STAMP)

weights: install
	$(PY) -m trainer.weights --out $(LITE0)

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

# The real CLI for 4 steps on the embedded data: the quickest proof that the whole path works.
smoke: install
	$(PY) trainer/train.py --dataset fashion-mnist --model test_resnet --no-pretrained --max-steps 4 \
		--max-train-samples 256 --max-eval-samples 128 --img-size 32 --output-dir outputs/smoke --overwrite-output-dir

# The embedded default at full quality (README reports its numbers).
train: weights
	$(PY) trainer/train.py --dataset fashion-mnist --model tf_efficientnet_lite0 --pretrained-file $(LITE0) \
		$(TRAIN_FLAGS) --output-dir $(DEMO_OUT) --overwrite-output-dir

demo: weights
	@if [ -f $(DEMO_OUT)/manifest.json ]; then echo "checkpoint already in $(DEMO_OUT)"; \
	else $(MAKE) --no-print-directory train; fi
	@echo "checkpoint: $(DEMO_OUT) (load it with timm.create_model('local-dir:$(DEMO_OUT)', pretrained=True))"
	$(PY) app.py --model $(DEMO_OUT)

app: install
	$(PY) app.py --model $(DEMO_OUT)

clean:
	rm -rf outputs/smoke .pytest_cache .ruff_cache
