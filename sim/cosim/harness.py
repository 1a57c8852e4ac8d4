"""cocotb-side harness for the generated chip: clock, reset, host bus, analog models.

Used by the cocotb test modules under ``tests/cosim`` and by the RTL chip server::

    h = ChipHarness(dut, config, seed=1)
    await h.start()                       # clock, reset, one analog model per core
    await h.write_reg("MVM_CONFIG", h.regs.pack("MVM_CONFIG", input_bits=4))
    value = await h.read(address)
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from neurram.config import ChipConfig
from neurram.spec import regmap as R
from neurram.models.core import AnalogCore, AnalogParams

from .analog import AnalogArrayDriver

__all__ = ["ChipHarness", "config_from_env", "CLOCK_PERIOD_NS"]

CLOCK_PERIOD_NS = 10


def config_from_env() -> ChipConfig:
    return ChipConfig.from_dict(json.loads(os.environ["NEURRAM_CONFIG"]))


class ChipHarness:
    def __init__(self, dut, config: ChipConfig | None = None, params: AnalogParams | None = None,
                 seed: int = 0):
        self.dut = dut
        self.config = config or config_from_env()
        self.params = params if params is not None else AnalogParams.ideal()
        self.seed = seed
        self.regs = R
        self.models = [AnalogCore(self.config.rows, self.config.cols, self.params, seed=self.core_seed(i))
                       for i in range(self.config.n_cores)]
        self.drivers = []
        self.cycles_per_poll = 1

    def core_seed(self, i: int) -> int:
        """Seed of core i's analog model (the fast model derives its cores' seeds the same way)."""
        return self.seed * 1000 + i

    def core_handle(self, i: int):
        return getattr(self.dut.logic, f"core_{i}").array

    async def start(self, reset_cycles: int = 4):
        dut = self.dut
        # The C++ clock of the GPI layer: no Python wake-up per edge.
        Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns", impl="gpi").start()
        dut.rst.value = 1
        dut.bus__w_en.value = 0
        dut.bus__r_en.value = 0
        dut.bus__addr.value = 0
        dut.bus__w_data.value = 0
        await ClockCycles(dut.clk, reset_cycles)
        dut.rst.value = 0
        for i, model in enumerate(self.models):
            drv = AnalogArrayDriver(self.core_handle(i), model, self.config, name=f"core_{i}")
            self.drivers.append(drv)
            cocotb.start_soon(drv.run())
        await ClockCycles(dut.clk, 4)

    # -- bus -------------------------------------------------------------------------------------
    async def write(self, addr: int, data: int):
        dut = self.dut
        dut.bus__addr.value = addr
        dut.bus__w_data.value = data & 0xFFFFFFFF
        dut.bus__w_en.value = 1
        await RisingEdge(dut.clk)
        dut.bus__w_en.value = 0
        await RisingEdge(dut.clk)

    async def read(self, addr: int) -> int:
        dut = self.dut
        dut.bus__addr.value = addr
        dut.bus__r_en.value = 1
        await RisingEdge(dut.clk)
        dut.bus__r_en.value = 0
        for _ in range(16):
            await RisingEdge(dut.clk)
            await ReadOnly()
            if dut.bus__r_valid.value:
                value = dut.bus__r_data.value.to_unsigned()
                await RisingEdge(dut.clk)
                return value
        raise TimeoutError(f"no read data for address {addr:#010x}")

    async def write_reg(self, name: str, value: int, index: int = 0):
        await self.write(R.REGISTERS[name].address(index), value)

    async def read_reg(self, name: str, index: int = 0) -> int:
        return await self.read(R.REGISTERS[name].address(index))

    async def write_buffer(self, space: int, core: int, offset: int, words):
        for k, w in enumerate(words):
            await self.write(R.address(space, core, offset + k), int(w))

    async def read_buffer(self, space: int, core: int, offset: int, n: int):
        return [await self.read(R.address(space, core, offset + k)) for k in range(n)]

    async def wait_idle(self, timeout_cycles: int = 10_000_000, poll_cycles: int = 64):
        """Poll STATUS until no batch runs; return the cycles waited."""
        waited = 0
        while waited < timeout_cycles:
            status = R.unpack("STATUS", await self.read_reg("STATUS"))
            if not status["busy"]:
                return waited
            # One timer callback, not one Python wake-up per cycle as ClockCycles would cost.
            await Timer(poll_cycles * CLOCK_PERIOD_NS, unit="ns")
            await RisingEdge(self.dut.clk)
            waited += poll_cycles
        raise TimeoutError("chip still busy")
