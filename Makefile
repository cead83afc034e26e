# Every target builds the virtual environment from scratch when it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Override to install a different torch build, e.g.
# make venv TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev

.PHONY: venv test lint train bench clean

# A TORCH_SPEC given on the command line is always installed; otherwise a torch already in the
# venv (e.g. a CUDA build the user installed) is kept.
ifeq ($(origin TORCH_SPEC),command line)
INSTALL_TORCH = $(BIN)/pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
else
INSTALL_TORCH = $(BIN)/python -c "import torch" 2>/dev/null || \
	$(BIN)/pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
endif

$(BIN)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(INSTALL_TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

venv: $(BIN)/.installed-$(EXTRAS)

lint: venv
	$(BIN)/ruff check .

test: venv lint
	$(BIN)/pytest

train: venv
	$(BIN)/keisei train

# Every speed benchmark (bench_strength.py trains several runs for an hour or more: run it alone).
bench:
	$(MAKE) EXTRAS=dev,bench venv
	for b in benchmarks/bench_*.py; do \
		[ $$b = benchmarks/bench_strength.py ] || $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV)
