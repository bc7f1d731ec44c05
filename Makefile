# Everything runs inside the project's own virtual environments, created on first use:
#   .venv          Airflow $(AIRFLOW3) (newest 3.x): demo, tests, lint
#   .venv-airflow2 Airflow $(AIRFLOW2): the same tests on the 2.x line
PYTHON   ?= python3
AIRFLOW3 ?= 3.3.2
AIRFLOW2 ?= 2.11.2
VENV     ?= .venv
VENV2    ?= .venv-airflow2
PIP_FLAGS ?= --quiet --disable-pip-version-check

STAMP3 := $(VENV)/.installed-$(AIRFLOW3)
STAMP2 := $(VENV2)/.installed-$(AIRFLOW2)
# The production topology's dependencies (make cluster-deps, below).
CLUSTER_STAMP := $(VENV)/.cluster-deps-$(AIRFLOW3)

VENVDIST ?= .venv-dist

.PHONY: demo test test-airflow3 test-airflow2 unit lint dist dist-check browser-deps venv venv2 clean bench bench-render \
	cluster-deps cluster chaos chaos-ci

DEMO_HISTORY ?= 0
demo: $(STAMP3)
	DEMO_HISTORY=$(DEMO_HISTORY) $(VENV)/bin/python scripts/demo.py

test: lint test-airflow3 test-airflow2 dist-check chaos-ci

test-airflow3: $(STAMP3) browser-deps
	$(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-airflow2: $(STAMP2)
	$(VENV2)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The unit tests alone (tests/unit: no Airflow servers, no browser, no emulator), on .venv; under a minute.
unit: $(STAMP3)
	$(VENV)/bin/python -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

# Debian's chromium for tests/browser (driven by playwright; never `playwright install`).
browser-deps:
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

lint: $(STAMP3)
	$(VENV)/bin/ruff check airflow_provider_aom tests example_dags scripts bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench

# Build the wheel and sdist, check their metadata, install the wheel alone into a clean Airflow venv and
# run the demo DAG with it (proves the package works without the source tree).
dist: $(STAMP3)
	rm -rf dist
	$(VENV)/bin/python -m build --outdir dist . > /dev/null
	$(VENV)/bin/python -m twine check --strict dist/*

dist-check: dist
	rm -rf $(VENVDIST)
	$(PYTHON) -m venv $(VENVDIST)
	$(VENVDIST)/bin/python -m pip install $(PIP_FLAGS) dist/*.whl "apache-airflow==$(AIRFLOW3)"
	cd /tmp && $(CURDIR)/$(VENVDIST)/bin/python -c "import airflow_provider_aom, sys; assert 'site-packages' in airflow_provider_aom.__file__, airflow_provider_aom.__file__"
	$(VENVDIST)/bin/python scripts/demo.py

venv: $(STAMP3)
venv2: $(STAMP2)

$(STAMP3): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -e ".[test]" "apache-airflow==$(AIRFLOW3)" playwright
	rm -f $(VENV)/.installed-* && touch $@

$(STAMP2): pyproject.toml
	test -x $(VENV2)/bin/python || $(PYTHON) -m venv $(VENV2)
	$(VENV2)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV2)/bin/python -m pip install $(PIP_FLAGS) -e ".[test]" "apache-airflow==$(AIRFLOW2)"
	rm -f $(VENV2)/.installed-* && touch $@

clean:
	rm -rf $(VENV) $(VENV2) $(VENVDIST) .demo build dist *.egg-info

# The real-triggerer step runs on the production topology, hence the cluster's dependencies.
bench: $(STAMP3) $(CLUSTER_STAMP)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) "apache-airflow==$(AIRFLOW3)" matplotlib psutil \
		apache-airflow-providers-http
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

# BENCHMARKS.md and its figures (docs/bench/) again from bench/results/ and bench/report.toml (no measuring;
# matplotlib draws the figures).
bench-render:
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) matplotlib
	$(VENV)/bin/python bench/render.py

# The production topology (scripts/cluster.py): Debian's PostgreSQL and Redis servers (apt, as root, when
# missing; Debian's policy-rc.d keeps apt from starting them), and Airflow's Celery provider and the PostgreSQL
# drivers (psycopg2; asyncpg for Airflow 3.3's async engine) in .venv, pinned to the Airflow already there so
# pip never moves it. Celery 5.7 dropped celery.backends.database.retry, which the provider imports: < 5.7.
cluster-deps: $(CLUSTER_STAMP)

$(CLUSTER_STAMP): $(STAMP3)
	ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 && test -x /usr/bin/redis-server || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) "apache-airflow==$(AIRFLOW3)" \
		apache-airflow-providers-celery==3.26.0 "celery[redis]>=5.5,<5.7" \
		psycopg2-binary asyncpg psutil
	touch $@

# Start the cluster and keep it up until Ctrl-C (it prints where the UI is).
cluster: $(CLUSTER_STAMP)
	$(VENV)/bin/python scripts/cluster.py $(CLUSTER_ARGS)

# A seeded chaos campaign against the cluster (docs/scaling.md, tests/chaos/README.md).
CHAOS_ARGS ?=
chaos: $(CLUSTER_STAMP)
	$(VENV)/bin/python scripts/chaos.py $(CHAOS_ARGS)

# The short campaign that make test runs.
chaos-ci: $(CLUSTER_STAMP)
	$(VENV)/bin/mypy scripts
	$(VENV)/bin/python scripts/chaos.py --runs 8 --kills 3 --stalls 1 --pg-outages 1 --pg-restarts 1 \
		--redis-outages 1 --aom-blackholes 1 --aom-downs 1 --aom-storms 1 --aom-skew 600 --pg-outage-seconds 10:20 \
		--redis-outage-seconds 10:20 --aom-outage-seconds 10:20 --aom-storm-seconds 15:25 --seed 1
