"""cocotb co-simulation of the generated Verilog, with the analog array from neurram.models."""
