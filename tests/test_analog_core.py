"""The analog core model: drive encoding, voltage-mode sensing, neurons, event vs batch paths."""

import numpy as np
import pytest

from neurram.models.core import AnalogCore, AnalogParams, pulse_counts
from neurram.models.crossbar import Crossbar, CrossbarParams
from neurram.models.neuron import NeuronBank, NeuronParams, decrement_closed_form, sar_closed_form
from neurram.spec.enums import Direction


def phases(code, bits, signed):
    """The drive phases of one line, written out as docs/chip.md §2 describes them."""
    out = []
    if signed:
        mag, neg = abs(code), code < 0
        for k in range(bits - 1):
            t = ((mag >> k) & 1) * (-1 if neg else 1)
            out += [(1 if t > 0 else -1, 1 << k), (1 if t >= 0 else -1, 1 << k)]
    else:
        for k in range(bits):
            b = (code >> k) & 1
            out += [(2 * b - 1, 1 << k), (1, 1 << k)]
    return out


@pytest.mark.parametrize("bits,signed", [(1, False), (3, False), (8, False), (2, True), (5, True), (8, True)])
def test_pulse_counts_follow_the_two_phase_scheme(bits, signed):
    top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    codes = np.arange(-top if signed else 0, top + 1)
    n_plus, n_minus = pulse_counts(codes, bits, signed, multiplier=3)
    for c, p, q in zip(codes, n_plus, n_minus):
        ph = phases(int(c), bits, signed)
        assert p == 3 * sum(w for s, w in ph if s > 0) and q == 3 * sum(w for s, w in ph if s < 0)
        assert p - q == 3 * 2 * c                                   # phases sum to 2x the code
    neg_plus, neg_minus = pulse_counts(codes, bits, signed, 3, negate=np.ones_like(codes, bool))
    assert np.array_equal(neg_plus, n_minus) and np.array_equal(neg_minus, n_plus)


def test_voltage_mode_sensing_formula():
    rng = np.random.default_rng(0)
    g = rng.uniform(0, 40, (12, 7))
    xb = Crossbar(12, 7, lambda: g, params=CrossbarParams(read_noise=False, wire=None))
    n_plus = rng.integers(0, 5, (3, 12))
    n_minus = rng.integers(0, 5, (3, 12))
    out = xb.integrate_counts(Direction.FORWARD, n_plus, n_minus, 0.1, 0.08)
    u = 0.1 * n_plus - 0.08 * n_minus
    assert np.allclose(out, u @ g / g.sum(0), rtol=1e-6)
    back = xb.integrate_counts(Direction.BACKWARD, n_plus[:, :7], n_minus[:, :7], 0.1, 0.08)
    u = 0.1 * n_plus[:, :7] - 0.08 * n_minus[:, :7]
    assert np.allclose(back, u @ g.T / g.T.sum(0), rtol=1e-6)


def test_charge_is_exact_whatever_the_batch():
    """One vector at a time or all at once: bit-identical charges (the conformance premise)."""
    core = AnalogCore(64, 48, AnalogParams.ideal(), seed=1)
    core.set_conductance(np.random.default_rng(1).uniform(0, 40, (64, 48)))
    codes = np.random.default_rng(2).integers(0, 16, (33, 64))
    n_plus, n_minus = pulse_counts(codes, 4, False, 1, negate=np.arange(64) % 2 == 1)
    whole = core.mvm_charge(Direction.FORWARD, n_plus, n_minus, 100, 100)
    single = np.concatenate([core.mvm_charge(Direction.FORWARD, n_plus[i:i + 1], n_minus[i:i + 1], 100, 100)
                             for i in range(33)])
    assert np.array_equal(whole, single)


@pytest.mark.parametrize("n,v_neg_mV", [(32, 100), (256, 100), (256, 83)])
def test_event_api_equals_batch_api_with_noise(n, v_neg_mV):
    """The co-simulation's event calls and the fast model's batch call draw the same noise and
    give the same integer charges, bit for bit, on a full 256 x 256 core too (the read-noise sums
    are exact, so the batch size and the summation order cannot change a single nanovolt)."""
    params = AnalogParams()                           # the default (calibrated) noise model
    a, b, off = (AnalogCore(n, n, p, seed=4) for p in (params, params, AnalogParams.ideal()))
    g = np.random.default_rng(3).uniform(0, 40, (n, n))
    for core in (a, b, off):
        core.set_conductance(g)
    codes = np.random.default_rng(4).integers(0, 8, (5, n))
    inverted = np.arange(n) % 2 == 1
    n_plus, n_minus = pulse_counts(codes, 3, False, 1, negate=inverted)
    q_batch = b.mvm_charge(Direction.FORWARD, n_plus, n_minus, 100, v_neg_mV)
    q_ideal = off.mvm_charge(Direction.FORWARD, n_plus, n_minus, 100, v_neg_mV)
    for v in range(5):
        a.initialise(Direction.FORWARD)
        # the bursts of a 3-bit MVM, as the RTL sends them
        for k in range(3):
            for phase in range(2):
                bit = (codes[v] >> k) & 1
                drive = np.where(phase == 0, 2 * bit - 1, 1) * np.where(inverted, -1, 1)
                a.integrate(drive, 1 << k, 100, v_neg_mV)
        a.compare()
        assert np.array_equal(a.neurons.q_nV[:n], q_batch[v])
    # noise on must change the charges (by about the read noise, not by nothing)
    changed = np.mean(q_batch != q_ideal)
    assert changed > 0.9, changed


def test_event_api_equals_batch_api_with_noise_uneven_drive():
    """Ternary inputs drive only some lines (uneven pulse counts): still bit-exact at 256 x 256."""
    n = 256
    a, b = (AnalogCore(n, n, AnalogParams(), seed=9) for _ in range(2))
    g = np.random.default_rng(5).uniform(0, 40, (n, n))
    a.set_conductance(g)
    b.set_conductance(g)
    tern = np.random.default_rng(6).integers(-1, 2, (4, n))
    n_plus, n_minus = (tern > 0).astype(np.int64) * 3, (tern < 0).astype(np.int64) * 3
    q_batch = b.mvm_charge(Direction.FORWARD, n_plus, n_minus, 100, 90)
    for v in range(4):
        a.initialise(Direction.FORWARD)
        a.integrate(tern[v], 3, 100, 90)
        a.compare()
        assert np.array_equal(a.neurons.q_nV[:n], q_batch[v])


def test_conversions_closed_forms_equal_the_loops():
    rng = np.random.default_rng(5)
    bank = NeuronBank(64, NeuronParams(comparator_offset_sigma_uV=300, packet_mismatch_sigma=0.05,
                                       packet_neg_gain=0.9), rng)
    q = rng.integers(-3_000_000, 3_000_000, 64)
    tracked = rng.random(64) > 0.2
    pos, neg = bank.packets_nV(50)
    negative, steps, flipped = decrement_closed_form(q, bank.offset_nV, pos, neg, tracked, 40)
    # the loop the RTL runs
    bank.q_nV[:] = q
    latched = bank.compare()
    done = ~tracked
    count = np.zeros(64, int)
    for _ in range(40):
        if done.all():
            break
        bank.step(~done, latched, 50)
        c = bank.compare()
        count += ~done
        done |= (~done) & (c != latched)
    assert np.array_equal(steps, count) and np.array_equal(negative, ~latched)
    # SAR: the loop, and the value it encodes
    bits = 6
    bank.q_nV[:] = q
    d = bank.compare()
    code = d.astype(int) << (bits - 1)
    for i in range(bits - 2, -1, -1):
        bank.step(tracked, d, 50, i)
        d = bank.compare()
        code |= (d & tracked).astype(int) << i
    fn = lambda i: bank.packets_nV(50, i)
    assert np.array_equal(sar_closed_form(q, bank.offset_nV, lambda i: fn(i)[0], lambda i: fn(i)[1], tracked, bits), code)


def test_sar_value_tracks_the_charge():
    bank = NeuronBank(200, NeuronParams.ideal())
    q = np.linspace(-15e6, 15e6, 200).astype(np.int64)       # within ±(2^(n-1) - 1/2) packets
    bits, packet_uV = 6, 500
    code = sar_closed_form(q, bank.offset_nV, lambda i: bank.packets_nV(packet_uV, i)[0],
                           lambda i: bank.packets_nV(packet_uV, i)[1], np.ones(200, bool), bits)
    value = (code - ((1 << bits) - 1) / 2) * packet_uV * 1e3
    assert np.abs(value - q).max() <= 0.5 * packet_uV * 1e3 + 1


def test_read_noise_matches_per_mvm_conductance_noise():
    """The closed-form noise equals, in distribution, drawing G + E for every MVM."""
    rng = np.random.default_rng(6)
    g = rng.uniform(5, 40, (24, 6))
    sigma = lambda gg: 0.05 * gg + 0.3
    xb = Crossbar(24, 6, lambda: g, sigma, CrossbarParams(wire=None))
    n_plus = np.tile(rng.integers(0, 9, 24), (20000, 1))
    n_minus = np.tile(rng.integers(0, 9, 24), (20000, 1))
    z = rng.standard_normal((20000, 2, 6))
    fast = xb.integrate_counts(Direction.FORWARD, n_plus, n_minus, 0.1, 0.1, z)
    u = 0.1 * (n_plus[0] - n_minus[0])
    ge = g + rng.standard_normal((20000, 24, 6)) * sigma(g)
    brute = np.einsum("i,nij->nj", u, ge) / ge.sum(1)
    assert np.allclose(fast.mean(0), brute.mean(0), atol=5 * np.sqrt(2) * brute.std(0).max() / np.sqrt(20000))
    assert np.allclose(fast.std(0), brute.std(0), rtol=0.05)


def test_ir_drop_enters_the_coupling():
    """With wire resistance the coupling departs from G/colsum, by the IR-drop model's amount."""
    from neurram.models.irdrop import WireParams, effective_coupling
    g = np.random.default_rng(8).uniform(0, 40, (32, 16))
    ideal = Crossbar(32, 16, lambda: g, params=CrossbarParams(wire=None)).coupling(Direction.FORWARD)
    wire = WireParams(r_bl_ohm_per_cell=5.0, r_sl_ohm_per_cell=5.0)
    xb = Crossbar(32, 16, lambda: g, params=CrossbarParams(wire=wire))
    k = xb.coupling(Direction.FORWARD)
    assert np.array_equal(k, np.rint(effective_coupling(g, wire, Direction.FORWARD, method="approx") * 2 ** 24))
    assert np.abs(k - ideal).max() > 1e-3 * 2 ** 24


@pytest.mark.parametrize("ternary", [False, True])
def test_sensing_noise_adds_its_variance(ternary):
    """kT/C per pulse and the comparator's noise per conversion: with exact conductances (no read
    noise) the summed deviation spreads by sqrt(samples · per-pulse V² + per-conversion V²); the
    ternary path (lines driven unequally) counts its samples as the most pulses on a line."""
    rng = np.random.default_rng(9)
    g = rng.uniform(5, 40, (24, 6))
    npar = NeuronParams()
    s2, c2 = npar.sampling_noise_V2(600.0), npar.conversion_noise_V2()
    assert np.sqrt(s2) == pytest.approx(np.sqrt(2 * 1.380649e-23 * 300 / 25e-15 + 1.380649e-23 * 300 / 600e-15))
    assert np.sqrt(c2) == pytest.approx(100e-6 * 16)
    xb = Crossbar(24, 6, lambda: g, lambda gg: np.zeros_like(gg), CrossbarParams(wire=None),
                  sample_noise_V2=s2, conversion_noise_V2=c2)
    n = 20000
    if ternary:
        n_plus = np.tile(np.r_[np.full(12, 3), np.zeros(12, int)], (n, 1))
        n_minus = np.tile(np.r_[np.zeros(12, int), np.full(6, 3), np.zeros(6, int)], (n, 1))
        samples = 3
    else:
        n_plus = np.tile(rng.integers(0, 15, 24), (n, 1))
        n_minus = 14 - n_plus
        samples = 14
    z = rng.standard_normal((n, 2, 6))
    out = xb.integrate_counts(Direction.FORWARD, n_plus, n_minus, 0.1, 0.1, z)
    quiet = xb.integrate_counts(Direction.FORWARD, n_plus[:1], n_minus[:1], 0.1, 0.1, None)
    assert np.allclose(out.mean(0), quiet[0], atol=5 * np.sqrt(samples * s2 + c2) / np.sqrt(n))
    assert np.allclose(out.std(0), np.sqrt(samples * s2 + c2), rtol=0.03)


def test_first_use_delay_relaxes_once_and_ideal_has_none():
    """The first MVM after programming comes first_use_delay_s later: the array relaxes once (not
    before every MVM), not at all when it has already relaxed that long, and never when ideal."""
    rng = np.random.default_rng(3)
    g = rng.uniform(5, 35, (16, 16))
    d = np.zeros((1, 16), np.int64)

    def first_mvm(params, pre_relax_s=0.0):
        core = AnalogCore(16, 16, params, seed=1)
        core.set_conductance(g)
        if pre_relax_s:
            core.relax(pre_relax_s)
        before = core.device.g_uS.copy()
        core.mvm_charge_dt(Direction.FORWARD, d, 14, 100, 100)
        after = core.device.g_uS.copy()
        core.mvm_charge_dt(Direction.FORWARD, d, 14, 100, 100)
        assert np.array_equal(core.device.g_uS, after)            # later MVMs do not relax again
        return before, after, core

    before, after, core = first_mvm(AnalogParams())
    assert not np.array_equal(before, after)
    live = ~(core.device.stuck_off | core.device.stuck_on)
    assert np.all(core.device.seconds_since_programming[live] == 1.0)
    sd = np.std((after - before)[live])
    assert 0.5 * core.device.relaxation_sigma_uS(20.0, 1.0) < sd < 2 * core.device.relaxation_sigma_uS(20.0, 1.0)
    before, after, core = first_mvm(AnalogParams(), pre_relax_s=86400.0)   # model:age= already covers it
    live = ~(core.device.stuck_off | core.device.stuck_on)
    assert np.array_equal(before, after) and np.all(core.device.seconds_since_programming[live] == 86400.0)
    before, after, _ = first_mvm(AnalogParams.ideal())
    assert np.array_equal(before, after) and np.array_equal(after, g)
