# devprof quick start (Debian/Ubuntu, Python >= 3.10):
#   make demo   set up .venv, profile the smoke suite on this machine, show it, write the HTML report
#   make test   set up .venv with test extras and run the test suite (one worker per core)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= devprof-data

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,torch]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/devprof devices
	$(BIN)/devprof profile --device local --suite smoke --out $(DATA) --resume
	$(BIN)/devprof show $(DATA)
	$(BIN)/devprof report $(DATA) -o report.html

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n auto

clean:
	rm -rf $(VENV) $(DATA) report.html .pytest_cache
