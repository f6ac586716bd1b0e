# SpaceHub: `make run` serves the hub on http://127.0.0.1:8000, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PORT ?= 8000
HUB ?= http://127.0.0.1:$(PORT)
# Local development runs with DEBUG on (no SECRET_KEY needed); production sets its own environment.
RUN_ENV ?= DEBUG=1

.PHONY: run test lint serve mock-app token messages bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools<81" wheel

$(VENV)/.base: requirements/base.txt | $(PY)
	$(PY) -m pip install --quiet --no-build-isolation -r requirements/base.txt
	touch $@

$(VENV)/.dev: requirements/dev.txt requirements/prod.txt $(VENV)/.base
	$(PY) -m pip install --quiet --no-build-isolation -r requirements/dev.txt
	touch $@

run: $(VENV)/.base
	$(RUN_ENV) $(PY) manage.py migrate --noinput
	$(RUN_ENV) $(PY) manage.py demo_data --hub $(HUB)
	@echo "Serving SpaceHub on $(HUB) (Ctrl-C stops it)"
	$(RUN_ENV) $(PY) -m spacehub.serve -b 127.0.0.1 -p $(PORT) --websocket_timeout -1 spacehub.asgi:application

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(RUN_ENV) $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

mock-app: $(VENV)/.base
	@test -n "$(SPACE)" -a -n "$(TOKEN)" || (echo "usage: make mock-app SPACE=Echo TOKEN=sh_..." && exit 2)
	$(PY) -m relay.client --hub $(HUB) --space "$(SPACE)" --token "$(TOKEN)"

token: $(VENV)/.base
	@test -n "$(SPACE)" || (echo "usage: make token SPACE=Echo" && exit 2)
	$(RUN_ENV) $(PY) manage.py setup_space "$(SPACE)" --hub $(HUB)

messages: $(VENV)/.dev
	$(RUN_ENV) $(PY) manage.py makemessages -l zh_Hans --no-obsolete --ignore=.venv --ignore=tests --ignore=bench
	$(RUN_ENV) $(PY) manage.py compilemessages -l zh_Hans --ignore=.venv

$(VENV)/.bench: requirements/bench.txt $(VENV)/.dev
	$(PY) -m pip install --quiet -r requirements/bench.txt
	touch $@

# The relay against the wire's floor and Gradio's queue (PostgreSQL + Redis; see bench/README.md).
bench: $(VENV)/.bench
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
