# dave — `make demo` and `make test` are all a person types; both run `setup` first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DAVE := $(VENV)/bin/dave
STAMP := $(VENV)/.dave-setup-stamp
PACKAGES := ros_ws/src/dave_core ros_ws/src/dave_nodes ros_ws/src/dave_cli sim models
DEMO_DURATION ?= 60
DEMO_JSON ?= out/demo_metrics.json

# Everything the project starts keeps DDS on this host.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export MUJOCO_GL := egl

.PHONY: setup demo test bench models clean

setup: $(STAMP)

# Re-run only when the pins or package metadata change: setup is idempotent and cheap to repeat.
$(STAMP): requirements.txt scripts/setup.sh $(foreach p,$(PACKAGES),$(p)/setup.py $(p)/package.xml)
	bash scripts/setup.sh
	touch $(STAMP)

demo: setup
	$(DAVE) demo --duration $(DEMO_DURATION) --json $(DEMO_JSON)

test: setup
	$(PY) -m pytest

bench: setup
	mkdir -p out
	$(DAVE) bench sim --json out/bench_sim.json
	$(DAVE) bench models --json out/bench_models.json

# Both networks from nothing (simulate, train, export, evaluate) into out/reproduce; models/ untouched.
models: setup
	scripts/reproduce_models.sh out/reproduce

clean:
	rm -rf $(VENV) out .pytest_cache
