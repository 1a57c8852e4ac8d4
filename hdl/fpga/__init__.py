"""FPGA prototype of the chip's digital side (docs/fpga.md).

* :mod:`.emulated_array`: a digital stand-in for the analog array behind the same boundary
  (:func:`neurram.hdl.analog.analog_array_signature`), exact to the fast model with noise off;
* :mod:`.uart`: the serial port that carries the framed host protocol;
* :mod:`.top`: the board tops (amaranth-boards) and the build flow behind ``neurram build``.
"""
