# Two commands for a fresh machine (Python 3.10+ with venv; everything else comes from PyPI):
#   make demo   set up .venv and run the end-to-end inference demo
#   make test   set up .venv and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
export AMARANTH_USE_YOSYS := builtin
# numpy's BLAS threads fight each other on small machines; one thread is faster here.
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test verilog regmap clean

# The fpga extra (the YoWASP nextpnr wheels: 11 s to install from the pip cache) lets the test
# suite place and route the smallest FPGA build (tests/test_fpga.py, about 2.5 min; docs/fpga.md).
# setuptools tells every editable install whose packages live in mapped folders (hdl/ is
# neurram.hdl, ...) that same-named folders in the working directory may shadow them: an
# InformationOnly notice that does not apply here, so the install does not show it.
$(VENV)/.installed: export PYTHONWARNINGS = ignore:Editable installation
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[fpga,onnx]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/neurram demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

verilog: $(VENV)/.installed
	$(VENV)/bin/neurram verilog --out build/verilog

regmap: $(VENV)/.installed
	$(VENV)/bin/neurram regmap --write

clean:
	rm -rf build sim_build .pytest_cache
