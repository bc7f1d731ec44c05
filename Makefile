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

.PHONY: demo test test-airflow3 test-airflow2 lint venv venv2 clean

demo: $(STAMP3)
	$(VENV)/bin/python scripts/demo.py

test: lint test-airflow3 test-airflow2

test-airflow3: $(STAMP3)
	$(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-airflow2: $(STAMP2)
	$(VENV2)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP3)
	$(VENV)/bin/ruff check airflow_provider_aom tests example_dags scripts
	$(VENV)/bin/mypy

venv: $(STAMP3)
venv2: $(STAMP2)

$(STAMP3): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -e ".[test]" "apache-airflow==$(AIRFLOW3)"
	rm -f $(VENV)/.installed-* && touch $@

$(STAMP2): pyproject.toml
	test -x $(VENV2)/bin/python || $(PYTHON) -m venv $(VENV2)
	$(VENV2)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV2)/bin/python -m pip install $(PIP_FLAGS) -e ".[test]" "apache-airflow==$(AIRFLOW2)"
	rm -f $(VENV2)/.installed-* && touch $@

clean:
	rm -rf $(VENV) $(VENV2) .demo build dist *.egg-info
