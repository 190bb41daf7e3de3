# Two commands for a newcomer: `make run` (the appliance on its embedded defaults) and `make test`.
VENV ?= .venv
HOME_DIR ?= appliance-home
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# x86-64 Linux takes onnxruntime-openvino, which installs the same module as the plain onnxruntime:
	# an environment made with the plain wheel drops both, and the install below brings the right one
	if [ "$$(uname -sm)" = "Linux x86_64" ] && $(VENV)/bin/pip show -q onnxruntime 2>/dev/null; then \
		$(VENV)/bin/pip uninstall -y -q onnxruntime onnxruntime-openvino; fi
	$(VENV)/bin/pip install -q -e '.[appliance,test,postgres]'
	scripts/fetch-viewer.sh $(VENV)/share/ohif-viewer || echo "the OHIF viewer was not fetched (npm missing?): /viewer will say so"
	touch $@

.PHONY: install system-deps run test benchmark
install: $(VENV)/.installed

system-deps:
	scripts/install-system-deps.sh

run: install
	[ -f $(HOME_DIR)/appliance.toml ] || $(VENV)/bin/appliance init --home $(HOME_DIR)
	$(VENV)/bin/appliance serve --home $(HOME_DIR)

test: system-deps install
	$(VENV)/bin/pytest -n 2 --dist loadfile

benchmark: system-deps install
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python benchmarks/ingest.py
	$(VENV)/bin/python benchmarks/audit.py
	$(VENV)/bin/python benchmarks/inference.py
	$(VENV)/bin/python benchmarks/deidentify.py
	$(VENV)/bin/python benchmarks/dicomweb.py
	$(VENV)/bin/python benchmarks/login.py
	$(VENV)/bin/python benchmarks/research_export.py
