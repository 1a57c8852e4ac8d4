"""Issue 16: every bad input is a one-line named error, every request gets one reply, and no
client stops a chip server.

The validation layer (``neurram.firmware.validate``) at every public entry: chip target strings,
data and network files, driver calls; the same driver error over every link; the servers of
``neurram.sim.serve`` against hostile and idle clients; the command line without tracebacks.
"""

import os
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.firmware import datasets, nn, validate
from neurram.firmware.protocol import Link, LoopbackTransport
from neurram.sim.serve import TcpChipServer, VirtualUart
from neurram.spec import regmap as R
from neurram.spec.errors import ChipError
from neurram.spec.mvm import MvmSettings
from neurram.spec.protocol import FrameDecoder, Op, Status, encode_request
from neurram.targets import model_engine, open_chip

SMALL = ChipConfig.small(cores=(1, 2))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one_line(e) -> str:
    msg = str(e.value if hasattr(e, "value") else e)
    assert "\n" not in msg and msg, msg
    return msg


# -- chip target strings ---------------------------------------------------------------------

@pytest.mark.parametrize("target, words", [
    ("model:cores=0x0", ["cores", "1..8"]),
    ("model:cores=2", ["ROWSxCOLS"]),
    ("model:rows=abc", ["rows", "not an integer"]),
    ("model:rows=63", ["rows=63", "even"]),
    ("model:age=inf", ["age", "finite"]),
    ("model:age=-1", ["age", ">= 0"]),
    ("model:noise=maybe", ["noise", "on or off"]),
    ("model:bogus=1", ["unknown option 'bogus'", "noise_scale"]),
    ("model:seed=-3", ["seed", "0..4294967295"]),
    ("model:seed=1,seed=2", ["twice"]),
    ("model:rows=", ["no value"]),
    ("model:small,cores=2x2", ["contradicts"]),
    ("rtl:cores=99x99", ["cores", "1..8"]),
    ("rtl:program=fast", ["program", "test-access"]),
    ("tcp:127.0.0.1:notaport", ["port", "not an integer"]),
    ("tcp:127.0.0.1:70000", ["port", "1..65535"]),
    ("serial:", ["serial:DEVICE"]),
    ("serial:/dev/ttyS0@fast", ["baud"]),
    ("foo:bar", ["unknown chip target", "serial:DEVICE"]),
])
def test_bad_targets_are_one_line_named_errors(target, words):
    with pytest.raises(validate.InputError) as e:
        open_chip(target)
    msg = _one_line(e)
    for w in words:
        assert w in msg, (w, msg)


def test_target_switches_are_honoured_not_ignored():
    off = open_chip("model:noise=OFF,cores=1x1,rows=16,cols=16")
    assert off.link.chip.params.crossbar.read_noise is False
    on = open_chip("model:noise=On,cores=1x1,rows=16,cols=16")
    assert on.link.chip.params.crossbar.read_noise is True
    assert open_chip("model:seed=5,cores=1x1,rows=16,cols=16").link.chip.seed == 5
    assert open_chip("model:seed=5,small", seed=5).link.chip.seed == 5
    with pytest.raises(validate.InputError, match="--seed 5"):
        open_chip("model:seed=5,small", seed=0)                # the CLI's --seed and the target disagree
    with pytest.raises(validate.InputError, match="config was given too"):
        open_chip("model:cores=1x1", config=ChipConfig.small())


def test_unreachable_servers_fail_at_once_with_one_line():
    with socket.socket() as s:                   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ConnectionError) as e:
        open_chip(f"tcp:127.0.0.1:{port}")
    assert time.monotonic() - t0 < 5 and "neurram serve --tcp" in _one_line(e)
    with pytest.raises(ConnectionError) as e:
        open_chip("serial:/dev/nonexistent@115200")
    assert "/dev/nonexistent" in _one_line(e)


# -- data and network files --------------------------------------------------------------------

def test_an_explicit_data_dir_is_the_only_place_searched(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    x = np.zeros((2, 28, 28), np.uint8)
    np.savez(elsewhere / "mnist.npz", x_train=x, y_train=[0, 1], x_test=x, y_test=[0, 1])
    monkeypatch.setenv("NEURRAM_DATA_DIR", str(elsewhere))
    assert datasets.load_mnist(None)[0].shape == (2, 28, 28)        # the default search finds it
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(datasets.DataNotFoundError) as e:
        datasets.load_mnist(empty)                                  # ... but not behind --data-dir
    assert str(empty) in _one_line(e)
    with pytest.raises(datasets.DataNotFoundError) as e:
        datasets.load_mnist(tmp_path / "missing")
    assert "no such directory" in _one_line(e)


@pytest.mark.parametrize("x, y, words", [
    (np.full((2, 28, 28), np.nan), [0, 1], ["NaN"]),
    (np.zeros((2, 32, 32), np.uint8), [0, 1], ["shape (2, 32, 32)", "(N, 28, 28)"]),
    (np.full((2, 28, 28), 0.5), [0, 1], ["0..1", "uint8"]),
    (np.full((2, 28, 28), 300), [0, 1], ["0..255"]),
    (np.zeros((2, 28, 28), np.uint8), [0, 10], ["labels", "0..9"]),
    (np.zeros((2, 28, 28), np.uint8), [0], ["one label per example"]),
])
def test_bad_data_files_are_named_errors(tmp_path, x, y, words):
    np.savez(tmp_path / "mnist.npz", x_test=x, y_test=np.asarray(y), x_train=x, y_train=np.asarray(y))
    with pytest.raises(datasets.DataFileError) as e:
        datasets.load_mnist(tmp_path)
    msg = _one_line(e)
    assert "mnist.npz" in msg
    for w in words:
        assert w in msg, (w, msg)


def test_corrupt_data_and_network_files(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(datasets.DataFileError) as e:
        datasets.load_mnist(tmp_path)
    assert "not a readable MNIST file" in _one_line(e)
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((1, 28, 28)))
    with pytest.raises(datasets.DataFileError, match="without x_test, y_test"):
        datasets.load_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big"))
    with pytest.raises(datasets.DataFileError):
        datasets.read_idx(tmp_path / "t10k-images-idx3-ubyte")
    bad = tmp_path / "net.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(validate.InputError) as e:
        nn.load_network(bad)
    assert "not a readable network file" in _one_line(e)


@pytest.mark.parametrize("drop", ["bias", "name"])
def test_network_files_without_a_key_name_it(tmp_path, drop):
    layers = [{"type": "flatten"},
              {"type": "dense", "name": "fc", "weight": np.ones((2, 4)), "bias": np.zeros(2), "act": None}]
    del layers[1][drop]
    nn.save_network(tmp_path / "n.npz", layers, {"bits": 3, "scale": 36.4, "step": 1 / 7})
    with pytest.raises(validate.InputError) as e:
        nn.load_network(tmp_path / "n.npz")
    assert f"'{drop}'" in _one_line(e) and "needs name, weight, bias, act" in str(e.value)


@pytest.mark.parametrize("x, words", [(np.full((1, 28, 28), np.nan), "NaN"), (np.full((1, 28, 28), 0.5), "0..1"),
                                      (np.full((1, 28, 28), 300), "0..255"), (np.full((1, 28, 28), -1), "0..255")])
def test_images_entering_a_network_are_checked(x, words):
    """nn.quantize_input is where pixels enter every network (software reference, chip runtime,
    mapper calibration): bad pixels are refused there, whatever the caller."""
    with pytest.raises(validate.InputError, match=words):
        nn.quantize_input(x, {"bits": 3, "scale": 255 / 7})
    assert nn.quantize_input(np.full((1, 28, 28), 255.0), {"bits": 3, "scale": 255 / 7}).max() == 7


def test_the_mapper_checks_its_network():
    from neurram.firmware.mapper import map_network

    net = nn.load_network(os.path.join(REPO, "firmware", "weights", "mnist_cnn.npz"))
    dense = next(layer for layer in net.layers if layer["type"] == "dense")
    del dense["bias"]
    with pytest.raises(validate.InputError, match="'bias'"):
        map_network(net, ChipConfig())


# -- driver calls: the same error over every link ------------------------------------------------

def _links():
    """The same small chip in process and behind the byte protocol."""
    engine = model_engine("model:noise=off", config=SMALL)
    return {"in-process": open_chip("model:noise=off", config=SMALL),
            "protocol": __import__("neurram.firmware.driver", fromlist=["Chip"]).Chip(Link(LoopbackTransport(engine)))}


BAD_CALLS = [
    ("core out of range", lambda c: c.mvm(5, np.zeros((1, 16), int), MvmSettings(input_bits=2)), "core 5 does not exist"),
    ("negative core", lambda c: c.counters(-1), "core -1 does not exist"),
    ("cell row out of range", lambda c: c.program(0, [1.0], rows=[16], cols=[0]), "cell rows"),
    ("conductance above G_max", lambda c: c.program(0, np.full((16, 16), 1000.0)), "0..40 µS"),
    ("negative conductance", lambda c: c.program(0, [-1.0], rows=[0], cols=[0]), "0..40 µS"),
    ("NaN conductance", lambda c: c.program(0, [np.nan], rows=[0], cols=[0]), "NaN"),
    ("read at 0 V", lambda c: c.cell_access(0, read_mV=0), "1..4095 mV"),
    ("cell read row", lambda c: c.cells.read_cells([16], [0]), "cell rows"),
    ("cell pulse col", lambda c: c.cells.pulse_cells([0], [-1], 0, 1200, 1000, 2500), "cell cols"),
    ("pulse amplitude", lambda c: c.cells.pulse_cells([0], [0], 0, 5000, 1000, 2500), "0..4095"),
    ("pulse width", lambda c: c.cells.pulse_cells([0], [0], 0, 1200, -1, 2500), "width_ns"),
    ("NaN codes", lambda c: c.mvm(0, np.full((1, 16), np.nan), MvmSettings(input_bits=2)), "NaN"),
    ("3-D codes", lambda c: c.mvm(0, np.zeros((1, 2, 16), int), MvmSettings(input_bits=2)), "shape"),
    ("codes out of range", lambda c: c.mvm(0, np.full((1, 16), 9), MvmSettings(input_bits=2)), "outside 0..3"),
    ("bias out of range", lambda c: c.set_bias(0, 5000, 100), "CORE_BIAS.v_pos_mV"),
    ("ternary out of range", lambda c: c.write_ternary(0, "bl", np.full(16, 2)), "-1, 0 or +1"),
    ("ternary side", lambda c: c.write_ternary(0, "up", np.zeros(16)), "'bl'"),
    ("mask too long", lambda c: c.set_mask(0, np.ones(99, bool)), "99 values"),
    ("mode type", lambda c: c.mvm(0, np.zeros((1, 16), int), "4-bit"), "MvmSettings"),
    ("cores not a list", lambda c: c.enable_cores(1), "give a list of cores"),
    ("core in a list", lambda c: c.select_cores([0, 7]), "core 7 does not exist"),
]


@pytest.mark.parametrize("name, call, words", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_driver_errors_are_identical_over_every_link(name, call, words):
    messages = {}
    for kind, chip in _links().items():
        chip.enable_cores([0])
        chip.cells = chip.cell_access(0)          # write-verify's cell access (enables the core)
        frames = chip.link.frames
        with pytest.raises(ChipError) as e:
            call(chip)
        messages[kind] = _one_line(e)
        assert chip.link.frames == frames, f"{kind}: a frame went out before the check"
    assert messages["in-process"] == messages["protocol"]
    assert words in messages["protocol"], messages


def test_link_word_operations_check_their_arguments():
    link = Link(LoopbackTransport(model_engine("model:noise=off", config=SMALL)))
    with pytest.raises(ValueError, match="32 bits"):
        link.write(2**32, 0)
    with pytest.raises(ValueError, match="32 bits"):
        link.write(0x13, -1)


# -- the chip end: one reply per request, whatever the request ------------------------------------

def _reg_write(name, value, seq):
    return encode_request(seq, Op.WRITE, struct.pack("<II", R.REGISTERS[name].address(0), value))


def test_a_cell_read_at_zero_volts_is_refused_and_the_server_lives():
    """The four frames of issue 16: a refusal in STATUS.config_error, CELL_RESULT kept, and the
    engine answers every request."""
    engine = model_engine("model:noise=off", config=SMALL)
    frames = [_reg_write("CORE_ENABLE", 1, 1), _reg_write("CELL_ADDR", 0, 2),
              _reg_write("CELL_TIMING", R.pack("CELL_TIMING", width_ns=1000, read_mV=0), 3),
              _reg_write("CTRL", R.pack("CTRL", cell_read=1), 4),
              encode_request(5, Op.READ, struct.pack("<I", R.REGISTERS["STATUS"].address(0))),
              encode_request(6, Op.READ, struct.pack("<I", R.REGISTERS["CELL_RESULT"].address(0)))]
    decoder = FrameDecoder("reply")
    replies = [decoder.feed(engine(f)) for f in frames]
    assert [len(r) for r in replies] == [1] * 6 and all(r[0].status == Status.OK for r in replies)
    status = R.unpack("STATUS", struct.unpack("<I", replies[4][0].payload)[0])
    assert status["config_error"] == 1 and status["cell_done"] == 1
    assert R.unpack("CELL_RESULT", struct.unpack("<I", replies[5][0].payload)[0])["valid"] == 0


def test_a_fault_inside_the_model_is_logged_and_answered():
    """A chip model that raises (a bug) still gets its request answered, and the server goes on."""
    engine = model_engine("model:noise=off", config=SMALL)
    real, batch = engine.bus_write, R.REGISTERS["BATCH"].address(0)

    def flaky(addr, data):
        if addr == batch:
            raise RuntimeError("model bug")
        real(addr, data)

    engine.bus_write = flaky
    logged = []
    with TcpChipServer(engine, log=logged.append) as server:
        chip = open_chip(f"tcp:127.0.0.1:{server.port}", timeout=5)
        chip.link.write(batch, 3)                           # answered although the model raised
        chip.write_reg("LFSR_SEED", 7)
        assert chip.read_reg("LFSR_SEED") == 7                # and the server goes on
        chip.link.transport.close()
    assert server.model_faults == 1
    assert len(logged) == 1 and "model bug" in logged[0] and "WRITE 0x00000013" in logged[0]


def test_tcp_server_serves_several_clients_and_drops_idle_ones():
    engine = model_engine("model:noise=off", config=SMALL)
    logged = []
    with TcpChipServer(engine, client_idle_s=0.5, max_clients=2, log=logged.append) as server:
        target = f"tcp:127.0.0.1:{server.port}"
        idle = socket.create_connection(("127.0.0.1", server.port))      # connects and says nothing
        idle.sendall(b"\xa5\x01")                                         # ... half a header
        a, b = open_chip(target, timeout=5), None
        a.write_reg("BATCH", 5)
        refused = socket.create_connection(("127.0.0.1", server.port))   # a third: over the limit
        refused.settimeout(2)
        assert refused.recv(16) == b""                                    # closed at once
        refused.close()
        time.sleep(1.0)                                                   # the idle client is dropped
        idle.settimeout(2)
        assert idle.recv(64)[:1] == b"\x5a"                               # its partial frame: TRUNCATED
        b = open_chip(target, timeout=5)                                  # ... so another fits
        assert b.read_reg("BATCH") == 5                                   # one chip for every client
        with pytest.raises(ConnectionError, match="closed the connection"):
            a.read_reg("BATCH")                                           # a was silent too long as well
        for c in (a, b):
            c.link.transport.close()
        idle.close()
    assert any("without a byte" in line for line in logged) and server.refused == 1


def test_hostile_clients_cannot_stop_the_server():
    engine = model_engine("model:noise=off", config=SMALL)
    rng = np.random.default_rng(3)
    with TcpChipServer(engine, log=lambda line: None) as server:
        for _ in range(5):                            # garbage, then a hang-up mid-frame
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes() + b"\xa5\x07\x02\x08")
            s.close()
        chip = open_chip(f"tcp:127.0.0.1:{server.port}", timeout=5)
        assert chip.describe().startswith("NeuRRAM")
        chip.link.transport.close()
        assert server.thread.is_alive()


def test_servers_close_cleanly_started_or_not():
    engine = model_engine("model:noise=off", config=SMALL)
    for make in (lambda: TcpChipServer(engine), lambda: VirtualUart(engine)):
        make().close()                                # never started: no "cannot join thread"
        server = make().start()
        server.close()
        server.close()
        assert not server.thread.is_alive()


# -- the command line -------------------------------------------------------------------------------

def _neurram(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "neurram", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.parametrize("args, words", [
    (["serve", "--tcp", "0", "--chip", "model:rows=abc"], "rows"),
    (["serve", "--tcp", "0", "--chip", "rtl"], "only a model target"),
    (["demo", "--chip", "model:cores=0x0", "--images", "1"], "cores"),
    (["demo", "--chip", "foo:bar", "--images", "1"], "unknown chip target"),
    (["verilog", "--config", "/nonexistent.json"], "/nonexistent.json"),
])
def test_cli_errors_are_one_line_without_traceback(args, words):
    r = _neurram(*args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    if args[0] == "verilog":                            # --debug (anywhere) shows the traceback
        r = _neurram(*args, "--debug")
        assert r.returncode != 0 and "Traceback" in r.stderr


@pytest.mark.parametrize("text, words", [('{"rows": 16, "bogus": 1}', "unknown ChipConfig field 'bogus'"),
                                         ("{rows", "not valid JSON"), ('{"rows": "16"}', "rows='16'")])
def test_bad_config_files_are_one_line(tmp_path, text, words):
    path = tmp_path / "chip.json"
    path.write_text(text)
    r = _neurram("verilog", "--config", str(path), "--out", str(tmp_path / "v"))
    assert r.returncode != 0 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_serve_stops_cleanly_on_ctrl_c():
    import signal
    proc = subprocess.Popen([sys.executable, "-m", "neurram", "serve", "--tcp", "0", "--chip", "model:small"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert "connect with --chip tcp:" in line, line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err
