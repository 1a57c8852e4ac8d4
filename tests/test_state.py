"""Non-volatile chip state (sim/state.py, docs/architecture.md contract 11): a chip opened on a
state file resumes programmed, a killed writer never leaves a torn file, bad files are one line."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.firmware.driver import Chip
from neurram.firmware.validate import InputError
from neurram.models.core import AnalogParams
from neurram.sim.fastlink import open_fast_chip
from neurram.sim.state import FORMAT, MAGIC, StateError, StateFile, read_payload
from neurram.spec.enums import Conversion
from neurram.spec.mvm import MvmSettings
from neurram.targets import open_chip

CFG = ChipConfig(core_grid=(1, 2), rows=32, cols=32)


def _program(chip: Chip, seed: int = 1):
    rng = np.random.default_rng(seed)
    chip.enable_cores([0, 1])
    for core in (0, 1):
        chip.program(core, rng.uniform(0, 40, (CFG.rows, CFG.cols)))
    pol = np.zeros(CFG.lines, bool)
    pol[1::2] = True
    chip.set_polarity(0, pol)
    chip.set_bias(0, 300, 310)


def _mvm(chip: Chip):
    chip.enable_cores([0, 1])
    codes = np.random.default_rng(5).integers(0, 8, (20, CFG.rows))
    mode = MvmSettings(input_bits=4, conversion=Conversion.DECREMENT)
    return chip.mvm(0, codes, mode), chip.mvm(1, codes, mode)


@pytest.mark.parametrize("noise", [True, False])
def test_reopened_chip_equals_a_chip_that_never_restarted(tmp_path, noise):
    path = str(tmp_path / "chip.state")
    params = AnalogParams() if noise else AnalogParams.ideal()
    first = Chip(open_fast_chip(CFG, params=params, seed=4, state_path=path))
    _program(first)
    assert first.link.chip.state.saves >= 2          # saved after each core's write-verify
    first.link.close()
    # A chip that never restarted: programmed the same way, then the same relaxation.
    ref = Chip(open_fast_chip(CFG, params=params, seed=4))
    _program(ref)
    again = Chip(open_fast_chip(CFG, params=params, seed=4, state_path=path))
    elapsed = again.link.chip.state_elapsed_s
    assert 0 < elapsed < 60
    assert again.link.chip.state.elapsed == {0: elapsed, 1: elapsed}     # both written at close
    for core in (0, 1):
        ref.link.chip.cores[core].model.relax(elapsed)
        a, b = again.link.chip.cores[core].model.device, ref.link.chip.cores[core].model.device
        for name in ("_g", "_g_prog", "_dev", "_t", "_pulse_count", "_read_count"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # the non-volatile configuration came back; inference needs no re-programming
    assert again.fields("CORE_BIAS", 0) == ref.fields("CORE_BIAS", 0)
    assert again.fields("CORE_BIAS", 0)["v_pos_mV"] == 300
    for x, y in zip(_mvm(again), _mvm(ref)):
        np.testing.assert_array_equal(x, y)
    if not noise:
        g = np.random.default_rng(1).uniform(0, 40, (CFG.rows, CFG.cols))
        assert np.abs(again.link.chip.cores[0].model.device.g_uS - g).max() < 1.5


def test_unprogrammed_chip_differs_so_the_test_above_can_fail(tmp_path):
    ref = Chip(open_fast_chip(CFG, params=AnalogParams.ideal(), seed=4))
    _program(ref)
    fresh = Chip(open_fast_chip(CFG, params=AnalogParams.ideal(), seed=4, state_path=str(tmp_path / "none")))
    assert fresh.link.chip.state_elapsed_s == 0
    assert not np.array_equal(fresh.link.chip.cores[0].model.device.g_uS, ref.link.chip.cores[0].model.device.g_uS)


def test_target_option_round_trip_and_clean_shutdown(tmp_path):
    path = tmp_path / "s.state"
    chip = open_chip(f"model:small,noise=off,state={path}")
    chip.enable_cores([0])
    chip.program(0, np.full((16, 16), 20.0))
    chip.link.close()                                 # clean shutdown writes the state
    again = open_chip(f"model:small,noise=off,state={path}")
    assert np.abs(again.link.chip.cores[0].model.device.g_uS - 20.0).max() < 1.0


@pytest.mark.parametrize("target, words", [
    ("model:state=/no/such/dir/x.state", "does not exist"),
    ("model:state", "file path"),
])
def test_state_option_is_checked(target, words):
    with pytest.raises(InputError, match=words):
        open_chip(target)


def _write_state(tmp_path):
    path = str(tmp_path / "c.state")
    chip = Chip(open_fast_chip(ChipConfig.small(), params=AnalogParams.ideal(), state_path=path))
    chip.enable_cores([0])
    chip.program(0, np.full((16, 16), 10.0))
    return path


def test_corrupt_file_is_one_line_naming_it(tmp_path):
    path = _write_state(tmp_path)
    data = bytearray(open(path, "rb").read())
    data[-100] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(StateError) as e:
        open_chip(f"model:small,noise=off,state={path}")
    assert "\n" not in str(e.value) and path in str(e.value) and "corrupt" in str(e.value)
    open(path, "wb").write(b"hello")
    with pytest.raises(StateError, match="not a neurram chip state file"):
        read_payload(path)


def test_wrong_version_is_one_line(tmp_path):
    path = _write_state(tmp_path)
    data = bytearray(open(path, "rb").read())
    data[len(MAGIC):len(MAGIC) + 4] = (FORMAT + 1).to_bytes(4, "little")
    open(path, "wb").write(bytes(data))
    with pytest.raises(StateError) as e:
        open_chip(f"model:small,noise=off,state={path}")
    assert "\n" not in str(e.value) and f"format version {FORMAT + 1}" in str(e.value)


def test_other_chip_options_are_refused(tmp_path):
    path = _write_state(tmp_path)
    with pytest.raises(StateError, match="seed"):
        open_chip(f"model:small,noise=off,seed=7,state={path}")
    with pytest.raises(StateError, match="analog parameters"):
        open_chip(f"model:small,state={path}")


def test_cli_reports_a_corrupt_state_in_one_line(tmp_path, capsys):
    from neurram.cli import main

    path = _write_state(tmp_path)
    open(path, "r+b").write(MAGIC + (FORMAT).to_bytes(4, "little") + b"\0" * 32)
    rc = main(["serve", "--tcp", "0", "--chip", "model:small,noise=off", "--state", path])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and path in err


_CHILD = textwrap.dedent("""
    import os, sys
    import numpy as np
    from neurram.config import ChipConfig
    from neurram.firmware.driver import Chip
    from neurram.sim.fastlink import open_fast_chip
    path, log = sys.argv[1], sys.argv[2]
    chip = Chip(open_fast_chip(ChipConfig(core_grid=(1, 2), rows=128, cols=128), seed=2, state_path=path))
    logf = open(log, "a")
    def record(digest):
        logf.write(digest + "\\n"); logf.flush(); os.fsync(logf.fileno())
    chip.link.chip.state.before_write = record
    kill_at = int(sys.argv[4])         # > 0: die at this call of os.fsync/os.replace/os.remove
    if kill_at:
        import signal
        calls = [0]
        def dying(f):
            def wrapped(*a, **kw):
                calls[0] += 1
                if calls[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return f(*a, **kw)
            return wrapped
        os.fsync, os.replace, os.remove = dying(os.fsync), dying(os.replace), dying(os.remove)
    chip.enable_cores([0, 1])
    rng = np.random.default_rng(int(sys.argv[3]))
    print("ready", flush=True)
    while True:
        core = int(rng.integers(0, 2))
        cells = rng.choice(128 * 128, 200, replace=False)
        chip.link.capabilities.cell_pulses(core, cells // 128, cells % 128, np.ones(200, int),
                                           np.full(200, 2000), np.full(200, 100), np.full(200, 2000))
""")


def test_killed_writer_never_leaves_a_torn_file(tmp_path):
    path, log = str(tmp_path / "crash.state"), str(tmp_path / "log")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    rng = np.random.default_rng(11)
    previous = None                   # payload digest of the file before each run
    kills_mid_run = 0
    for run in range(10):
        # even runs: killed by the test at a random moment; odd runs: the writer dies at a random
        # step of a save (after a write, before or after a replace, between deletions)
        kill_at = int(rng.integers(8, 60)) if run % 2 else 0
        open(log, "w").close()
        p = subprocess.Popen([sys.executable, "-c", _CHILD, path, log, str(run), str(kill_at)],
                             stdout=subprocess.PIPE, env=env, text=True)
        assert p.stdout.readline().strip() == "ready"
        if not kill_at:
            time.sleep(float(rng.uniform(0.05, 0.6)))
            os.kill(p.pid, signal.SIGKILL)
        assert p.wait(timeout=60) == -signal.SIGKILL
        p.stdout.close()
        logged = open(log).read().split()
        digest = hashlib.sha256(read_payload(path)).hexdigest()     # checksum verified
        # the state before or after one complete save: the last save begun, or the one before it
        candidates = logged[-2:] if len(logged) >= 2 else logged + ([previous] if previous else [])
        assert digest in candidates, (run, len(logged))
        kills_mid_run += len(logged) >= 2
        # and it loads into a chip
        from neurram.sim.fastmodel import FastChip
        FastChip(ChipConfig(core_grid=(1, 2), rows=128, cols=128), seed=2, state_path=path)
        previous = digest
    assert kills_mid_run >= 7
    assert not [f for f in os.listdir(tmp_path) if ".tmp." in f]   # stale temporaries removed on open


def _serve(path, tmp_path):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "neurram", "serve", "--tcp", "0", "--chip", "model:small,noise=off",
                          "--state", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline()
    assert line.startswith("serving"), (line, p.stderr.read() if p.poll() is not None else "")
    return p, line.split("--chip ")[1].split(";")[0]


def test_serve_state_round_trip(tmp_path):
    path = str(tmp_path / "served.state")
    p, target = _serve(path, tmp_path)
    try:
        chip = open_chip(target)
        chip.enable_cores([0])
        chip.program(0, np.full((16, 16), 30.0))
        before = chip.cell_access(0).read_cells(np.arange(16), np.arange(16))
    finally:
        p.send_signal(signal.SIGTERM)                 # a clean shutdown saves the state
        assert p.wait(timeout=30) == 0
    p, target = _serve(path, tmp_path)
    try:
        chip = open_chip(target)
        chip.enable_cores([0])
        after = chip.cell_access(0).read_cells(np.arange(16), np.arange(16))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    assert np.abs(before - 30.0).max() < 1.5
    np.testing.assert_array_equal(after, before)     # noise off: no relaxation, exact reads
