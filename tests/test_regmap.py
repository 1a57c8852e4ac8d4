"""The register map (neurram/spec/regmap.py), the register block built from it, and the files
generated from it for readers that cannot import Python (hdl/regmap_gen.py)."""

import os

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

import json
import random
import shutil
import subprocess
import sys

import pytest
from amaranth.sim import Simulator

from neurram import cli
from neurram.config import ChipConfig
from neurram.hdl import regmap_gen
from neurram.hdl import registers as R
from neurram.spec import enums
from neurram.spec import regmap as rm

ROOT = regmap_gen.repo_root()
HEADER = ROOT / "firmware" / "include" / "neurram_regs.h"

ID_REGS = ("CHIP_ID", "VERSION", "GEOMETRY", "PRECISION", "BUFFERS", "FEATURES", "CLOCK")
REGS = list(rm.REGISTERS.values())
BUFS = list(rm.BUFFERS.values())


# -- generated files are up to date ------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(regmap_gen.OUTPUTS))
def test_committed_file_is_fresh(path):
    p = ROOT / path
    assert p.exists(), f"{path} is missing: run `neurram regmap --write`"
    assert p.read_text(encoding="utf-8") == regmap_gen.OUTPUTS[path](), \
        f"{path} is stale: run `neurram regmap --write`"


def test_write_and_check_all(tmp_path):
    assert sorted(regmap_gen.check_all(tmp_path)) == sorted(regmap_gen.OUTPUTS)
    assert sorted(regmap_gen.write_all(tmp_path)) == sorted(regmap_gen.OUTPUTS)
    assert regmap_gen.check_all(tmp_path) == []
    assert regmap_gen.write_all(tmp_path) == []
    (tmp_path / "docs" / "registers.md").write_text("edited\n")
    assert regmap_gen.check_all(tmp_path) == ["docs/registers.md"]


# -- the Amaranth register block -------------------------------------------------------------

SMALL = ChipConfig.small()
# A 2 x 2 grid with non-default options, so that every ID register differs from its reset.
QUAD = ChipConfig.small(cores=(2, 2), n=24).replace(
    input_bits_max=6, output_bits_max=5, max_steps_limit=90, pulse_multiplier_max=100,
    batch_depth=12, conversions=("sign", "sar"), stochastic_neurons=False, clock_gating=False,
    clock_hz=50e6)
CONFIGS = pytest.mark.parametrize("config", [SMALL, QUAD], ids=["1core", "2x2"])


def expected_id(config):
    """ID register values computed here, independently of the generated code."""
    cr, cc = config.core_grid
    conv = config.conversions
    return {
        "CHIP_ID": 0x4E524D31,
        "VERSION": (rm.VERSION[0] << 16) | (rm.VERSION[1] << 8) | rm.VERSION[2],
        "GEOMETRY": cr | (cc << 4) | (config.rows << 8) | (config.cols << 20),
        "PRECISION": (config.input_bits_max | (config.output_bits_max << 4)
                      | (config.max_steps_limit << 8) | (config.pulse_multiplier_max << 16)),
        "BUFFERS": config.batch_depth | (config.wv_rows << 16),
        "FEATURES": (("sign" in conv) | (("decrement" in conv) << 1) | (("sar" in conv) << 2)
                     | (config.backward << 3) | (config.recurrent << 4) | (config.stochastic_neurons << 5)
                     | (config.clock_gating << 6) | (1 << 7) | (config.wv_engine << 8)
                     | (config.emulated_array << 9) | (config.event_counters << 10)),
        "CLOCK": round(config.clock_hz / 1000),
    }


def port(dut, r):
    return getattr(dut, r.name.lower())


def mask(r):
    return sum(f.mask for f in r.fields)


def word_mask(n, i):
    return (1 << max(0, min(32, n - 32 * i))) - 1


class Bus:
    def __init__(self, ctx, dut):
        self.ctx, self.bus = ctx, dut.bus

    async def write(self, addr, data):
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.addr, addr)
        ctx.set(bus.w_data, data)
        ctx.set(bus.w_en, 1)
        await ctx.tick()
        ctx.set(bus.w_en, 0)

    async def read(self, addr):
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.addr, addr)
        ctx.set(bus.r_en, 1)
        await ctx.tick()
        ctx.set(bus.r_en, 0)
        return ctx.get(bus.r_data)


def simulate(config, body):
    dut = R.RegisterFile(config)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    done = []

    async def tb(ctx):
        await body(ctx, Bus(ctx, dut), dut)
        done.append(True)

    sim.add_testbench(tb)
    sim.run()
    assert done, "testbench did not finish"


def instances(r, config):
    """(address, index) of every instance a bus could address, existing or not."""
    return [(r.address(i), i) for i in range(r.count)]


def exists(r, i, config):
    """Whether register instance i is built (its core exists, and the config has its feature)."""
    return (r.index != "core" or i < config.n_cores) and r.name not in rm.absent_registers(config)


@CONFIGS
def test_reset_values(config):
    ident = expected_id(config)

    async def body(ctx, bus, dut):
        for r in REGS:
            for addr, i in instances(r, config):
                got = await bus.read(addr)
                if r.name in ident:
                    want = ident[r.name]
                elif r.access != rm.Access.RW or not exists(r, i, config):
                    want = 0
                else:
                    want = r.reset
                assert got == want, f"{r.name}[{i}] @ {addr:#x} reads {got:#x}, want {want:#x}"
                if r.access == rm.Access.RW and exists(r, i, config):
                    p = port(dut, r)
                    value = ctx.get((p[i] if r.count > 1 else p).as_value())
                    assert value == r.reset, f"{r.name}[{i}] port resets to {value:#x}"
        assert ctx.get(dut.ctrl.as_value()) == 0
        # Unmapped addresses, including the holes of the per-core block.
        for addr in (0x007, 0x00E, 0x00F, 0x014, 0x01A, 0x029, 0x0FF, 0x103, 0x107, 0x10F,
                     0x100 + 0x10 * config.n_cores, 0x4FF, 0x500, 0x8000, 0xFFFF):
            assert await bus.read(addr) == 0, f"unmapped {addr:#x} reads non-zero"

    simulate(config, body)


@CONFIGS
def test_rw_registers(config):
    rng = random.Random(1)
    n = config.n_cores
    rw = [r for r in REGS if r.access == rm.Access.RW]

    async def body(ctx, bus, dut):
        written = {}
        for r in rw:
            for addr, i in instances(r, config):
                value = rng.getrandbits(32)
                await bus.write(addr, value)
                if r.index == "word":
                    want = value & mask(r) & word_mask(n, i)
                elif exists(r, i, config):
                    want = value & mask(r)
                else:
                    want = 0
                written[(r.name, i)] = want
                if exists(r, i, config):
                    p = port(dut, r)
                    got = ctx.get((p[i] if r.count > 1 else p).as_value())
                    assert got == want, f"{r.name}[{i}] port is {got:#x} after writing {value:#x}"
        # Read everything back after all writes: instances and registers are independent.
        for r in rw:
            for addr, i in instances(r, config):
                got = await bus.read(addr)
                assert got == written[(r.name, i)], f"{r.name}[{i}] reads {got:#x}"
        # The port fields carry the written field values (struct layout positions).
        mvm = rm.unpack("MVM_CONFIG", written[("MVM_CONFIG", 0)])
        assert ctx.get(dut.mvm_config.input_bits) == mvm["input_bits"]
        assert ctx.get(dut.mvm_config.direction).value == mvm["direction"]
        assert ctx.get(dut.core_bias[n - 1].v_neg_mV) == \
            rm.unpack("CORE_BIAS", written[("CORE_BIAS", n - 1)])["v_neg_mV"]

    simulate(config, body)


@CONFIGS
def test_ro_registers(config):
    rng = random.Random(2)
    n = config.n_cores
    ro = [r for r in REGS if r.access == rm.Access.RO and r.name not in ID_REGS]
    ident = expected_id(config)

    async def body(ctx, bus, dut):
        driven = {}
        for r in ro:
            p = port(dut, r)
            for _, i in instances(r, config):
                if exists(r, i, config):
                    value = rng.getrandbits(32)  # pad bits too: they must read 0
                    ctx.set((p[i] if r.count > 1 else p).as_value(), value)
                    driven[(r.name, i)] = value & mask(r)
        for r in ro:
            for addr, i in instances(r, config):
                want = driven.get((r.name, i), 0)
                assert await bus.read(addr) == want, f"{r.name}[{i}]"
                # Writes to RO registers are ignored.
                await bus.write(addr, ~want & 0xFFFFFFFF)
                assert await bus.read(addr) == want, f"{r.name}[{i}] changed by a write"
        for name in ID_REGS:
            addr = rm.register(name).address()
            await bus.write(addr, ~ident[name] & 0xFFFFFFFF)
            assert await bus.read(addr) == ident[name], f"{name} changed by a write"
        # Hardware updates are visible on the next read.
        ctx.set(dut.count_mvm[n - 1].count, 12345)
        assert await bus.read(rm.register("COUNT_MVM").address(n - 1)) == 12345

    simulate(config, body)


@CONFIGS
def test_write_strobe_pulses_one_cycle(config):
    ctrl = rm.register("CTRL")

    async def body(ctx, bus, dut):
        for value in (0xFFFFFFFF, 0b00001, 0b10100):
            assert ctx.get(dut.ctrl.as_value()) == 0
            await bus.write(ctrl.address(), value)
            assert ctx.get(dut.ctrl.as_value()) == value & mask(ctrl), "no pulse after the write"
            if value & 1:
                assert ctx.get(dut.ctrl.start) == 1
            await ctx.tick()
            assert ctx.get(dut.ctrl.as_value()) == 0, "pulse longer than one cycle"
            await ctx.tick().repeat(2)
            assert ctx.get(dut.ctrl.as_value()) == 0
        # Back-to-back writes pulse in consecutive cycles; reads of CTRL return 0.
        await bus.write(ctrl.address(), 0b01)
        assert ctx.get(dut.ctrl.as_value()) == 0b01
        await bus.write(ctrl.address(), 0b10)
        assert ctx.get(dut.ctrl.as_value()) == 0b10
        assert await bus.read(ctrl.address()) == 0
        assert ctx.get(dut.ctrl.as_value()) == 0
        # A write elsewhere does not pulse.
        await bus.write(rm.register("BATCH").address(), 0xFFFFFFFF)
        assert ctx.get(dut.ctrl.as_value()) == 0

    simulate(config, body)


@CONFIGS
def test_per_core_instances(config):
    n = config.n_cores
    bias = rm.register("CORE_BIAS")
    neuron = rm.register("CORE_NEURON")

    async def body(ctx, bus, dut):
        for c in range(n):
            await bus.write(bias.address(c), rm.pack("CORE_BIAS", v_pos_mV=10 + c, v_neg_mV=500 + c))
            await bus.write(neuron.address(c), 1000 + c)
        # Writes to absent cores change nothing.
        for c in range(n, bias.count):
            await bus.write(bias.address(c), 0xFFFFFFFF)
            await bus.write(neuron.address(c), 0xFFFFFFFF)
        for c in range(bias.count):
            got = rm.unpack("CORE_BIAS", await bus.read(bias.address(c)))
            want = {"v_pos_mV": 10 + c, "v_neg_mV": 500 + c} if c < n else {"v_pos_mV": 0, "v_neg_mV": 0}
            assert got == want, f"CORE_BIAS[{c}]"
            assert await bus.read(neuron.address(c)) == (1000 + c if c < n else 0), f"CORE_NEURON[{c}]"
        for c in range(n):
            assert ctx.get(dut.core_bias[c].v_pos_mV) == 10 + c
            assert ctx.get(dut.core_neuron[c].packet_uV) == 1000 + c
        # RO per-core registers: each instance reads its own port.
        for c in range(n):
            ctx.set(dut.count_busy[c].count, 7 * c + 1)
            ctx.set(dut.core_status[c].batch_index, c + 3)
        for c in range(n):
            assert await bus.read(rm.register("COUNT_BUSY").address(c)) == 7 * c + 1
            assert rm.unpack("CORE_STATUS", await bus.read(rm.register("CORE_STATUS").address(c))) \
                == {"busy": 0, "enabled": 0, "batch_index": c + 3}

    simulate(config, body)


@pytest.mark.parametrize("config", [SMALL, QUAD, ChipConfig.small(n=8, cores=(6, 6))],
                         ids=["1core", "2x2", "6x6"])
def test_core_enable_bits_beyond_n_cores(config):
    n = config.n_cores
    assert n <= 36

    async def body(ctx, bus, dut):
        for name in ("CORE_ENABLE", "CORE_SELECT"):
            r = rm.register(name)
            p = port(dut, r)
            for i in range(r.count):
                await bus.write(r.address(i), 0xFFFFFFFF)
            for i in range(r.count):
                want = word_mask(n, i)
                assert await bus.read(r.address(i)) == want, f"{name}[{i}]"
                assert ctx.get(p[i].mask) == want, f"{name}[{i}] port"
            assert (ctx.get(p.as_value()) >> n) == 0, f"{name}: bits of absent cores set"

    simulate(config, body)


def test_identification_matches_config():
    for config in (ChipConfig(), SMALL, QUAD):
        assert rm.identification(config) == expected_id(config)
    # The default configuration reports exactly the reset values of the description.
    ident = rm.identification(ChipConfig())
    for name in ID_REGS:
        assert ident[name] == rm.register(name).reset, name


def test_amaranth_layouts_match_regmap():
    from amaranth.lib import data
    for r in REGS:
        layout = data.Layout.cast(R.layout(r.name))
        assert layout.size == 32, r.name
        assert [name for name, _ in layout] == [f.name for f in r.fields], r.name
        for f in r.fields:
            lf = layout[f.name]
            assert (lf.offset, data.Layout.cast(lf.shape).size if isinstance(lf.shape, data.Layout) else
                    lf.width) == (f.lsb, f.width), (r.name, f.name)
            if f.enum is not None:
                assert lf.shape is R.hdl_enum(f.enum), (r.name, f.name)
        assert R.layout(r.name).const({f.name: f.reset for f in r.fields}).as_bits() == r.reset, r.name
    for e in rm.ENUMS:
        cls = R.hdl_enum(e)
        assert cls.as_shape().width == e.width
        assert {m.name: m.value for m in cls} == {m.name: m.value for m in e}
    assert R.Space is R.hdl_enum(enums.Space) and {m.name for m in R.Space} == {"REGISTERS", *(b.name for b in BUFS)}


def test_default_config_converts_to_verilog():
    from amaranth.back import verilog
    text = verilog.convert(R.RegisterFile(ChipConfig()), name="neurram_regs")
    assert "module neurram_regs" in text
    assert "core_bias" in text and "bus__r_data" in text


# -- the host's view of the map -------------------------------------------------------------------

def test_host_register_objects():
    for r in REGS:
        assert rm.REGISTERS[r.name] is getattr(rm.REGISTERS, r.name) is rm.register(r.name)
        assert r.mask == mask(r)
        assert [r.address(i) for i in range(r.count)] == [r.offset + i * r.stride for i in range(r.count)]
        with pytest.raises(IndexError):
            r.address(r.count)
        for f in r.fields:
            assert r[f.name] is f and f.get(f.put(f.max)) == f.max
            with pytest.raises(ValueError):
                f.put(f.max + 1)
    assert {b.name: int(b.space) for b in BUFS} == {m.name: int(m) for m in enums.Space if m.name != "REGISTERS"}
    assert [b.words_per_core(ChipConfig()) for b in BUFS] == [16 * 9 * 8, 16 * 8 * 8, 16, 16, 8, 8, 4 * 256]
    assert rm.address(enums.Space.INPUT, 5, 17) == (1 << 28) | (5 << 22) | 17
    assert rm.split_address(rm.address(enums.Space.POLARITY, 63, 4000)) == (6, 63, 4000)


def test_identification_round_trips_to_the_config():
    for config in (ChipConfig(), SMALL, QUAD):
        assert rm.config_from_identification(rm.identification(config)) == config
    words = rm.identification(SMALL)
    with pytest.raises(ValueError, match="not a NeuRRAM chip"):
        rm.config_from_identification({**words, "CHIP_ID": 0})
    with pytest.raises(ValueError, match="not supported"):
        rm.config_from_identification({**words, "VERSION": rm.pack("VERSION", major=rm.VERSION[0] + 1)})


def test_pack_unpack_round_trip():
    rng = random.Random(3)
    for r in REGS:
        assert rm.pack(r.name) == r.reset, r.name
        assert rm.unpack(r.name, r.reset) == {f.name: f.reset for f in r.fields}
        for _ in range(5):
            values = {f.name: (rng.choice(list(f.enum)) if f.enum else rng.getrandbits(f.width))
                      for f in r.fields}
            word = rm.pack(r.name, **values)
            assert word & ~mask(r) == 0
            assert rm.unpack(r.name, word) == values, r.name
            # The same bits as the Amaranth layout of the register.
            layout = R.layout(r.name)
            hdl_fields = {f.name: R.hdl_enum(f.enum)(int(values[f.name])) if f.enum else values[f.name]
                          for f in r.fields}
            assert layout.const(hdl_fields).as_bits() == word, r.name
            # Bits outside the fields are ignored by unpack.
            assert rm.unpack(r.name, word | (~mask(r) & 0xFFFFFFFF)) == values
    word = rm.pack("MVM_CONFIG", direction=enums.Direction.BACKWARD, conversion=enums.Conversion.SAR)
    out = rm.unpack("MVM_CONFIG", word)
    assert out["direction"] is enums.Direction.BACKWARD and out["conversion"] is enums.Conversion.SAR
    assert out["output_bits"] == rm.register("MVM_CONFIG").fields[5].reset  # others keep reset
    with pytest.raises(ValueError):
        rm.pack("BATCH", count=1 << 13)
    with pytest.raises(ValueError):
        rm.pack("BATCH", count=-1)
    with pytest.raises(KeyError):
        rm.pack("BATCH", nonsense=1)
    with pytest.raises(KeyError):
        rm.pack("NO_SUCH_REGISTER")


def test_spec_does_not_import_amaranth_or_other_layers():
    code = ("import sys, neurram.spec.regmap, neurram.spec.mvm, neurram.spec.protocol, neurram.spec.layout, "
            "neurram.spec.link, neurram.spec.analog, neurram.spec.errors; "
            "bad = [m for m in sys.modules if m.startswith(('amaranth', 'neurram.hdl', 'neurram.sim', "
            "'neurram.firmware', 'neurram.models'))]; print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


# -- the C header -------------------------------------------------------------------------------

GCC = shutil.which("gcc")


@pytest.mark.skipif(GCC is None, reason="no gcc")
def test_c_header_compiles(tmp_path):
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    subprocess.run([GCC, *flags, "-fsyntax-only", "-x", "c", str(HEADER)], check=True)
    src = tmp_path / "t.c"
    src.write_text(
        '#include <stdio.h>\n#include "neurram_regs.h"\n#include "neurram_regs.h"\n'
        "int main(void) {\n"
        '    printf("%u %u %u %u %u %u\\n", (unsigned)NEURRAM_CHIP_ID_ADDR, (unsigned)NEURRAM_CHIP_ID_RESET,\n'
        "           (unsigned)NEURRAM_CORE_BIAS_ADDR_OF(3),\n"
        "           (unsigned)NEURRAM_FIELD_PREP(NEURRAM_MVM_CONFIG_CONVERSION, NEURRAM_CONVERSION_SAR),\n"
        "           (unsigned)NEURRAM_FIELD_GET(NEURRAM_CELL_PULSE_GATE_MV, NEURRAM_CELL_PULSE_RESET),\n"
        "           (unsigned)NEURRAM_ADDRESS(NEURRAM_SPACE_OUTPUT, 5, 17));\n"
        "    return 0;\n}\n")
    exe = tmp_path / "t"
    subprocess.run([GCC, *flags, "-I", str(HEADER.parent), str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert [int(x) for x in out] == [
        rm.register("CHIP_ID").offset,
        rm.CHIP_ID_MAGIC,
        rm.register("CORE_BIAS").address(3),
        rm.pack("MVM_CONFIG", direction=enums.Direction.FORWARD, input_bits=0, output_bits=0,
                conversion=enums.Conversion.SAR),
        rm.register("CELL_PULSE").fields[2].reset,
        rm.address(rm.buffer("OUTPUT").space, 5, 17),
    ]


# -- JSON and Markdown --------------------------------------------------------------------------

def test_json_lists_every_register():
    doc = json.loads((ROOT / "docs" / "registers.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in doc["registers"]] == [r.name for r in REGS]
    for jr, r in zip(doc["registers"], REGS):
        assert (jr["offset"], jr["access"], jr["count"], jr["reset"]) == (r.offset, r.access, r.count, r.reset)
        assert [(f["name"], f["lsb"], f["width"]) for f in jr["fields"]] == \
            [(f.name, f.lsb, f.width) for f in r.fields]
    assert [b["name"] for b in doc["buffers"]] == [b.name for b in BUFS]
    assert [e["name"] for e in doc["enums"]] == [e.__name__ for e in rm.ENUMS]
    assert doc["addressing"]["space_shift"] == rm.SPACE_SHIFT


def test_cli_prints_markdown(capsys):
    assert cli.main(["regmap", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out == regmap_gen.gen_markdown()
    assert out.startswith("<!--") and "# NeuRRAM register map" in out
    for r in REGS:
        assert f"### {r.name}\n" in out, r.name
    for b in BUFS:
        assert f"### {b.name}\n" in out, b.name


def test_cli_write_and_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(regmap_gen, "repo_root", lambda: tmp_path)
    assert cli.main(["regmap", "--check"]) == 1
    assert "stale: docs/registers.md" in capsys.readouterr().out
    assert cli.main(["regmap", "--write"]) == 0
    assert (tmp_path / "firmware" / "include" / "neurram_regs.h").read_text() == regmap_gen.gen_c()
    assert cli.main(["regmap", "--check"]) == 0
    (tmp_path / "docs" / "registers.json").write_text("{}\n")
    assert cli.main(["regmap", "--check"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == "stale: docs/registers.json"
    with pytest.raises(SystemExit):
        cli.main(["regmap"])  # one of --format/--write/--check is required
