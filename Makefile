# Two entry points (see README): `make demo` and `make test`. Each creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

$(STAMP): setup.py setup.cfg
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[ros,dev]'
	# the real launch/launch_ros (not on any registry) for the real-launch test, when ../shared is beside the clone
	if ls ../shared/wheels/*.whl >/dev/null 2>&1; then $(BIN)/pip install -q osrf-pycommon lark ros-ament-index-python && $(BIN)/pip install -q --no-deps ../shared/wheels/*.whl; fi
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/python -m demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q test

clean:
	rm -rf $(VENV) out
