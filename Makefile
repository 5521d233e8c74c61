# Two commands do all the set-up on a fresh machine: `make search` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup search test lint data clean

setup: $(STAMP)

# torch first, from the pinned CPU build, so that nothing below pulls the CUDA wheels.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[dev,postgres]'
	touch $(STAMP)

# The default proxy dataset, from Debian's package (gzipped idx files).
data:
	@if [ ! -d $(FMNIST) ]; then \
	  echo "installing Debian package dataset-fashion-mnist"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

search: setup data
	$(VENV)/bin/nas search --target-latency 20ms

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup

lint: setup
	$(VENV)/bin/ruff check nas searchspace predictors experiments tests

clean:
	rm -rf $(VENV) build *.egg-info
