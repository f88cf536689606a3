# Overdracht: the project's menu. `make run` and `make test` set up a fresh machine.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: run test faults lint format bench install browser constraints translations clean

run: $(STAMP)                 ## start the whole platform at http://127.0.0.1:8000
	$(PY) -m ops.devserver

test: $(STAMP) browser lint   ## every test: unit, integration, end-to-end, browser
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

faults: $(STAMP)              ## the fault suite with 30 s faults, and its table (make test: 10 s)
	OVERDRACHT_FAULT_SECONDS=30 $(PY) -m pytest -p no:cacheprovider tests/faults $(PYTEST_ARGS)

lint: $(STAMP)                ## ruff, as CI runs it
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)               ## throughput through the platform vs direct S3, same run
	$(PY) -m bench.transfer

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

browser:                      ## Debian's Chromium for the Playwright test (needs root)
	@test -x $(CHROMIUM) || (apt-get update -qq && apt-get install -y -qq chromium)

translations: $(STAMP)        ## bring the English catalogue up to the code's texts, and compile it
	$(PY) -m ops.translations

constraints:                  ## re-pin every transitive dependency after changing pyproject
	$(PY) -m pip freeze --exclude-editable > constraints.txt

clean: $(STAMP)               ## remove all local state: broker vhost and users, databases, var/, .venv/
	$(PY) -m ops.devserver clean
	rm -rf $(VENV) var
