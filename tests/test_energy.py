"""Energy and latency from event counters: the model, the reports and `neurram report`."""

import dataclasses

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.models.energy import (COUNTER_KEYS, ENERGY_KEYS, EnergyModel, busy_cycles_per_mvm,
                                   decrement_steps_for_output_bits, mvm_counts)
from neurram.spec.enums import Conversion

M = EnergyModel()


def random_counts(rng):
    return {k: int(rng.integers(0, 10_000)) for k in COUNTER_KEYS}


# -- the model --------------------------------------------------------------------------------------

def test_energy_is_linear_in_the_counts_and_bytes():
    rng = np.random.default_rng(0)
    a, b = random_counts(rng), random_counts(rng)
    ea = M.energy_pJ(a, rows=256, cols=128, bytes_moved=100)
    eb = M.energy_pJ(b, rows=256, cols=128, bytes_moved=7)
    mix = {k: 3 * a[k] + 5 * b[k] for k in COUNTER_KEYS}
    em = M.energy_pJ(mix, rows=256, cols=128, bytes_moved=3 * 100 + 5 * 7)
    for k in ENERGY_KEYS + ("total",):
        assert em[k] == pytest.approx(3 * ea[k] + 5 * eb[k], rel=1e-12, abs=1e-9), k
    # Every counter moves the total: doubling one count adds exactly that count's energy once more.
    for k in COUNTER_KEYS:
        one = dict.fromkeys(COUNTER_KEYS, 0)
        one[k] = 1
        e1 = M.energy_pJ(one, rows=256, cols=128)["total"]
        assert e1 > 0, k
        one[k] = 2
        assert M.energy_pJ(one, rows=256, cols=128)["total"] == pytest.approx(2 * e1), k


def test_zero_counts_give_zero_energy_and_latency():
    e = M.energy_pJ({k: 0 for k in COUNTER_KEYS}, rows=256, cols=256)
    assert set(e) == set(ENERGY_KEYS) | {"total"}
    assert all(v == 0 for v in e.values())
    assert M.energy_pJ({}, rows=256, cols=256)["total"] == 0
    assert M.latency_ns({}, 100e6) == 0 and M.event_latency_ns({}) == 0


def test_breakdown_sums_to_total():
    rng = np.random.default_rng(1)
    for _ in range(5):
        e = M.energy_pJ(random_counts(rng), rows=64, cols=32, bytes_moved=int(rng.integers(0, 1000)))
        assert sum(e[k] for k in ENERGY_KEYS) == pytest.approx(e["total"], rel=1e-12)
        assert e["io"] > 0 and e["control"] > 0


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        M.energy_pJ({"pulses": 3}, rows=4, cols=4)
    with pytest.raises(ValueError, match="negative"):
        M.energy_pJ({"pulse": -1}, rows=4, cols=4)
    with pytest.raises(ValueError, match="clock_hz"):
        M.latency_ns({"busy": 1}, 0)


def test_one_4bit_mvm_on_a_256x256_core_by_hand():
    """4-bit unsigned inputs, charge-decrement with 4-bit outputs (worst case 2^3 = 8 steps)."""
    c = mvm_counts(4, 4, conversion="decrement")
    # pulses 2·(2^4 − 1) = 30; compare 1 + 8; busy 2 + (6·4 + 30) + 2 + 8 + 1 + 3·8 = 91 cycles.
    assert c == {"mvm": 1, "pulse": 30, "compare": 9, "step": 8, "program": 0, "read": 0, "busy": 91}
    e = M.energy_pJ(c, rows=256, cols=256)
    by_hand = {
        "input_drive": 30 * 256 * 0.42,                  # 0.6 pF × 0.5 V × 1.4 V per row-pulse
        "wordline": 256 * 0.5856 * 1.3 * 2.2,            # C_WL·ΔV·V per row
        "neuron_init": 256 * (0.6 * 0.1 * 1.8 + 10 * 0.003 * 1.8 ** 2),
        "sample": 30 * 256 * 0.025 * 1.8 ** 2,
        "integrate": 30 * 256 * 0.25,
        "compare": 9 * 256 * 0.30,
        "step": 8 * 256 * (0.025 * 1.8 ** 2 + 0.03 * (130 / 45) * (1.2 / 0.9) ** 2),
        "control": 91 * 2 * 300 * 0.005 * 1.44,
    }
    for k, v in by_hand.items():
        assert e[k] == pytest.approx(v, rel=1e-9), k
    assert e["total"] == pytest.approx(sum(by_hand.values()), rel=1e-9)
    assert e["total"] == pytest.approx(7814.7, abs=0.1)
    assert M.tops_per_watt(4, 4, 256, 256) == pytest.approx(2 * 256 * 256 / e["total"])
    assert M.tops_per_watt(4, 4, 256, 256, cells_per_weight=2) == pytest.approx(256 * 256 / e["total"])
    # 91 busy cycles at 100 MHz; 30 pulses + 9 compares + 8 steps + init at 80 ns.
    assert M.latency_ns(c, 100e6) == pytest.approx(910.0)
    assert M.event_latency_ns(c) == pytest.approx((1 + 30 + 9 + 8) * 80.0)


def test_tops_per_watt_falls_with_input_precision():
    for conv in ("decrement", "sar"):
        for bo in range(1, 9):
            t = [M.tops_per_watt(b, bo, 256, 256, conversion=conv) for b in range(1, 9)]
            assert all(x > y for x, y in zip(t, t[1:])), (conv, bo, t)
    # and with output precision for the charge-decrement conversion (2^(bo-1) steps)
    t = [M.tops_per_watt(4, bo, 256, 256) for bo in range(1, 9)]
    assert all(x > y for x, y in zip(t, t[1:]))


def test_digital_energies_are_the_45nm_table():
    assert M.add8_45nm_pJ == 0.03
    assert M.mult8_45nm_pJ == 0.2
    assert M.fmul32_45nm_pJ == 3.7
    assert (M.sram_read64_45nm_pJ_min, M.sram_read64_45nm_pJ_max) == (10.0, 100.0)
    assert (M.dram_access_45nm_pJ_min, M.dram_access_45nm_pJ_max) == (1300.0, 2600.0)
    assert M.digital_tops_per_watt() == pytest.approx(2 / 0.23)
    assert M.digital_tops_per_watt("sram") == pytest.approx(2 / (0.23 + 10 / 8))


def test_every_field_names_its_unit():
    for f in dataclasses.fields(EnergyModel):
        assert any(u in f.name for u in ("_pJ", "_ns")), f.name


def test_worst_case_decrement_steps():
    assert [decrement_steps_for_output_bits(b) for b in range(1, 9)] == [1, 2, 4, 8, 16, 32, 64, 127]
    assert mvm_counts(3, 1, conversion="decrement")["step"] == 0        # 1 bit: the sign alone
    assert mvm_counts(3, 6, conversion="sar")["step"] == 5
    assert mvm_counts(4, 4, signed=True)["pulse"] == 2 * 7              # 3 magnitude bits
    assert mvm_counts(2, 4, pulse_multiplier=3)["pulse"] == 2 * 3 * 3


def test_busy_cycles_formula_is_the_fast_models():
    from neurram.spec.mvm import MvmSettings
    from neurram.sim.fastmodel import busy_cycles_per_mvm as fast_busy
    for conv in Conversion:
        for signed in (False, True):
            for b in range(2 if signed else 1, 9):
                for bo in (1, 4, 8):
                    for m in (1, 3):
                        for steps in (0, 5):
                            s = MvmSettings(input_bits=b, input_signed=signed, conversion=conv, output_bits=bo,
                                            pulse_multiplier=m)
                            want = int(fast_busy(s, np.array([steps]))[0])
                            got = busy_cycles_per_mvm(b, signed=signed, pulse_multiplier=m, conversion=conv,
                                                      output_bits=bo, steps=steps)
                            assert got == want, (conv, signed, b, bo, m, steps)


@pytest.mark.parametrize("conversion,bits,out_bits", [("sar", 3, 5), ("sar", 5, 8), ("decrement", 4, 8)])
def test_mvm_counts_match_the_chips_counters(conversion, bits, out_bits):
    """The counts derived for one MVM are what the chip's counters say (SAR: exactly; decrement:
    exactly once the measured step count is given)."""
    from neurram.spec.mvm import MvmSettings
    from neurram.targets import open_chip
    chip = open_chip("model:noise=off", config=ChipConfig.small())
    chip.enable_cores([0])
    rng = np.random.default_rng(4)
    n = 5
    codes = rng.integers(0, 1 << bits, (n, 16))
    conv = Conversion[conversion.upper()]
    chip.clear_counters()
    chip.mvm(0, codes, MvmSettings(input_bits=bits, conversion=conv, output_bits=out_bits, max_steps=20))
    got = chip.counters(0)
    one = mvm_counts(bits, out_bits, conversion=conversion, steps=0)
    for k in ("mvm", "pulse"):
        assert got[k] == n * one[k], k
    if conversion == "sar":
        for k in ("compare", "step", "busy"):
            assert got[k] == n * one[k], k
    else:
        # Steps vary per MVM; compare = 1 + steps and busy = base + 1 + 3·steps per MVM.
        assert got["step"] > 0
        assert got["compare"] == n + got["step"]
        assert got["busy"] == n * one["busy"] + 3 * got["step"]


# -- reports ------------------------------------------------------------------------------------------

def test_energy_report_on_runtime_layers():
    """A small network through the runtime: the report's per-layer energy is the model applied to
    each layer's counters."""
    from neurram.firmware import nn
    from neurram.firmware.mapper import map_network
    from neurram.report import bytes_per_mvm, energy_report, layer_energies
    from neurram.firmware.runtime import Runtime
    from neurram.targets import open_chip
    rng = np.random.default_rng(2)
    net = nn.Network({"bits": 3, "scale": 255 / 7, "step": 1 / 7}, [
        {"type": "flatten"},
        {"type": "dense", "name": "fc1", "weight": rng.normal(0, 0.1, (24, 80)), "bias": np.zeros(24),
         "act": {"kind": "relu_q", "bits": 3, "clip": 1.0}},
        {"type": "dense", "name": "fc2", "weight": rng.normal(0, 0.2, (5, 24)), "bias": np.zeros(5), "act": None}])
    cfg = ChipConfig(core_grid=(1, 4), rows=128, cols=64)
    chip = open_chip("model:noise=off", config=cfg)
    x = rng.integers(0, 256, (12, 8, 10)).astype(np.uint8)
    rt = Runtime(chip, map_network(net, chip.config, x_cal=x))
    rt.program(progress=False)
    res = rt.forward(x, progress=False)
    layers = layer_energies(res.layers, cfg)
    assert [l.name for l in layers] == ["fc1", "fc2"]
    for l, st in zip(layers, res.layers):
        assert st.counters["pulse"] > 0 and st.counters["busy"] > 0
        want = M.energy_pJ(st.counters, rows=128, cols=64, bytes_moved=st.counters["mvm"] * bytes_per_mvm(cfg))
        assert l.energy_pJ == want
        assert l.latency_ns == pytest.approx(st.counters["busy"] / cfg.clock_hz * 1e9)
    text = energy_report(res.layers, cfg, images=len(x))
    assert "fc1" in text and "fc2" in text and "per inference (12 images)" in text
    # bytes per MVM: 9 input planes + 8 output planes of 4 words (128 lines -> 4 words of 32 bits)
    assert bytes_per_mvm(cfg) == (9 + 8) * 4 * 4


def test_energy_report_accepts_a_dict_and_totals():
    from neurram.report import energy_report, layer_energies
    cfg = ChipConfig.small()
    counts = {"a": {"mvm": 10, "pulse": 140, "compare": 50, "step": 40, "busy": 900},
              "b": {"mvm": 0}}
    ls = layer_energies(counts, cfg, include_io=False)
    assert ls[0].energy_pJ == M.energy_pJ(counts["a"], rows=16, cols=16)
    assert ls[1].energy_pJ["total"] == 0
    assert "total" in energy_report(counts, cfg)


def test_tops_grid_and_table():
    from neurram.report import tops_per_watt_grid, tops_table
    g = tops_per_watt_grid(M)
    assert g.shape == (8, 8)
    assert g[3, 3] == pytest.approx(M.tops_per_watt(4, 4, 256, 256))
    assert np.all(np.diff(g, axis=0) < 0)               # falls with input bits
    gs = tops_per_watt_grid(M, signed=True)
    assert np.isnan(gs[0]).all() and not np.isnan(gs[1:]).any()
    text = tops_table(M)
    assert f"{g[3, 3]:.2f}" in text and "in \\ out" in text


# -- the command --------------------------------------------------------------------------------------

def test_neurram_report_prints_the_table(capsys):
    from neurram.cli import main
    assert main(["report", "--conversion", "sar"]) == 0
    out = capsys.readouterr().out
    assert "TOPS/W of one MVM on a 256 x 256 core" in out
    lines = [l for l in out.splitlines() if l.startswith("4 b ")]
    assert lines, out
    row = lines[0].split()
    assert float(row[2 + 3]) == pytest.approx(M.tops_per_watt(4, 4, 256, 256, conversion="sar"), abs=0.006)
    assert "Against the paper" in out


def test_neurram_report_writes_the_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from neurram.cli import main
    path = tmp_path / "tops.png"
    assert main(["report", "--rows", "64", "--cols", "64", "--plot", str(path)]) == 0
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert f"wrote {path}" in capsys.readouterr().out


def test_neurram_report_mnist_missing_weights_is_a_clear_error(tmp_path, capsys):
    from neurram.cli import main
    assert main(["report", "--conversion", "sar", "--mnist", "2", "--weights", str(tmp_path / "none.npz")]) == 1
    assert "MNIST weights not found" in capsys.readouterr().err


def test_neurram_report_mnist(capsys):
    from neurram.cli import main
    from neurram.firmware.tasks.mnist import DEFAULT_WEIGHTS
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"{DEFAULT_WEIGHTS} not present")
    assert main(["report", "--conversion", "sar", "--mnist", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "MNIST, 2 images" in out and "per inference (2 images)" in out
    for name in ("conv1", "conv6", "fc", "total"):
        assert any(l.startswith(name) for l in out.splitlines()), name
