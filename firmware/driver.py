"""The register-level host driver: one driver for every chip.

A :class:`Chip` talks to any backend through a *link* with four word-level operations
(``read``, ``write``, ``write_burst``, ``read_burst``): the framed byte protocol to an FPGA board
or to the RTL co-simulation (``firmware.protocol.Link``), or the in-process fast model
(``neurram.targets``). It discovers geometry and features from the identification registers,
so nothing about the chip is assumed.

Two operations are long sequences of identical frames: streaming many MVM batches through a core,
and programming many cells. A link may offer them as single transactions (``mvm_stream``,
``mvm_segment``, ``cell_pulses``, ``cell_reads``); the fast model does, computing the whole
sequence in one vectorised call with the same results, counters and random draws as the
frame-by-frame sequence. ``mvm_segment`` carries a stream compactly (the codes of the driven lines
and which outputs come back, :class:`~neurram.spec.link.SegmentDrive`) instead of full vectors.
The driver falls back to frames when a link has no such method; tests hold the two paths equal.
"""

import time

import numpy as np

from neurram.config import ChipConfig
from neurram.spec import layout
from neurram.spec import regmap as R
from neurram.spec.enums import Direction
from neurram.spec.errors import ChipError
from neurram.spec.link import SegmentDrive
from neurram.spec.mvm import PACKET_UV_MAX, MvmSettings

from . import validate
from neurram.spec import writeverify as wv
from neurram.spec.enums import WvStatus

from .writeverify import FAIL_NONE, FAIL_ROUNDS, FAIL_TOP_PULSES, WriteVerifyConfig, WriteVerifyReport, write_verify

__all__ = ["Chip"]


class Chip:
    """A NeuRRAM chip behind a link.

    Every public method checks its arguments (cores, ranges, shapes, dtypes, NaN and infinity,
    conductance targets within 0..G_max) before a frame goes out, and raises :class:`ChipError`
    with a one-line message naming the valid range: the same error over every link.
    """

    def __init__(self, link, *, check_id: bool = True):
        self.link = link
        self._mode_cache = {}
        #: The chip's geometry and features, as its identification registers report them.
        self.config: ChipConfig | None = None
        #: (major, minor, patch) of the chip's digital design.
        self.version: tuple | None = None
        if check_id:
            self.identify()

    # -- registers -------------------------------------------------------------------------------
    def read_reg(self, name: str, index: int = 0) -> int:
        return int(self.link.read(R.REGISTERS[name].address(index)))

    def write_reg(self, name: str, value: int, index: int = 0) -> None:
        self.link.write(R.REGISTERS[name].address(index), int(value))
        self._mode_cache.pop((name, index), None)

    def write_reg_cached(self, name: str, value: int, index: int = 0) -> None:
        """Write unless the last value this driver wrote is the same (saves frames)."""
        if self._mode_cache.get((name, index)) != value:
            self.link.write(R.REGISTERS[name].address(index), int(value))
            self._mode_cache[(name, index)] = value

    def _forget(self, *names) -> None:
        for key in [k for k in self._mode_cache if k[0] in names]:
            del self._mode_cache[key]

    def fields(self, name: str, index: int = 0) -> dict:
        return R.unpack(name, self.read_reg(name, index))

    def identify(self) -> ChipConfig:
        """Read the identification block: sets and returns :attr:`config` (and :attr:`version`)."""
        words = {name: self.read_reg(name) for name in R.ID_REGISTERS}
        try:
            self.config = R.config_from_identification(words)
        except ValueError as e:
            raise ChipError(f"{e} (is this link connected to a NeuRRAM chip?)") from None
        v = R.unpack("VERSION", words["VERSION"])
        self.version = (v["major"], v["minor"], v["patch"])
        return self.config

    def describe(self) -> str:
        c, v = self.config, ".".join(str(x) for x in self.version)
        return (f"NeuRRAM v{v}: {c.n_cores} cores ({c.core_grid[0]} x {c.core_grid[1]}) of "
                f"{c.rows} x {c.cols}, batch depth {c.batch_depth}, {c.clock_hz / 1e6:g} MHz")

    # -- cores -----------------------------------------------------------------------------------
    def _check_core(self, core) -> int:
        n = self.config.n_cores
        if isinstance(core, (bool, np.bool_)) or not isinstance(core, (int, np.integer)) or not 0 <= core < n:
            raise ChipError(f"core {core!r} does not exist: this chip has {n} cores, 0..{n - 1}")
        return int(core)

    @staticmethod
    def _pack(name: str, **fields) -> int:
        """R.pack with a ChipError naming the register field and its range when a value does not fit."""
        reg = R.REGISTERS[name]
        for key, value in fields.items():
            f = reg[key]
            try:
                ok = 0 <= int(value) <= f.max and float(value) == int(value)
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                raise ChipError(f"{name}.{key} = {value!r} is out of range: use an integer 0..{f.max}"
                                + (f" {f.unit}" if getattr(f, "unit", None) else ""))
        return R.pack(name, **fields)

    def _core_mask_write(self, name: str, cores) -> None:
        if isinstance(cores, (int, np.integer, str, bytes)) or not hasattr(cores, "__iter__"):
            raise ChipError(f"{name}: give a list of cores (e.g. [0, 1]), not {cores!r}")
        bits = 0
        for c in cores:
            bits |= 1 << self._check_core(c)
        self.write_reg_cached(name, bits & 0xFFFFFFFF, 0)
        if self.config.n_cores > 32:
            self.write_reg_cached(name, bits >> 32, 1)

    def enable_cores(self, cores) -> None:
        """Power up exactly these cores (the rest are gated and keep their state)."""
        self._core_mask_write("CORE_ENABLE", cores)

    def enabled_cores(self) -> list[int]:
        """The cores CORE_ENABLE powers (read from the chip)."""
        bits = self.read_reg("CORE_ENABLE", 0)
        if self.config.n_cores > 32:
            bits |= self.read_reg("CORE_ENABLE", 1) << 32
        return [i for i in range(self.config.n_cores) if (bits >> i) & 1]

    def ensure_enabled(self, core: int) -> None:
        """Power up ``core`` too, leaving the other cores as they are."""
        self.enable_cores(sorted(set(self.enabled_cores()) | {core}))

    def select_cores(self, cores) -> None:
        self._core_mask_write("CORE_SELECT", cores)

    def set_bias(self, core: int, v_pos_mV: int, v_neg_mV: int) -> None:
        core = self._check_core(core)
        self.write_reg_cached("CORE_BIAS", self._pack("CORE_BIAS", v_pos_mV=v_pos_mV, v_neg_mV=v_neg_mV), core)

    def set_packet(self, core: int, packet_uV: int) -> None:
        core = self._check_core(core)
        if not (isinstance(packet_uV, (int, np.integer)) and 1 <= packet_uV <= PACKET_UV_MAX):
            raise ChipError(f"charge packet {packet_uV!r} µV out of range: use an integer 1..{PACKET_UV_MAX}")
        self.write_reg_cached("CORE_NEURON", R.pack("CORE_NEURON", packet_uV=int(packet_uV)), core)

    def set_stochastic(self, seed: int, noise_uV: int) -> None:
        """Seed of the stochastic neurons' random source (reloaded at every start) and the
        largest injected noise charge."""
        if not (isinstance(seed, (int, np.integer)) and 0 < seed < (1 << 32)):
            raise ChipError(f"LFSR seed {seed!r} must be an integer within 1..2^32-1")
        self.write_reg_cached("LFSR_SEED", R.pack("LFSR_SEED", seed=seed))
        self.write_reg_cached("STOCHASTIC", self._pack("STOCHASTIC", noise_uV=noise_uV))

    def _buffer_write(self, space, core, words, offset=0) -> None:
        self.link.write_burst(R.address(space, core, offset), np.asarray(words, np.uint32))

    def _buffer_read(self, space, core, count, offset=0) -> np.ndarray:
        return np.asarray(self.link.read_burst(R.address(space, core, offset), count), np.uint32)

    def _line_bits(self, bits, what: str) -> np.ndarray:
        """One bool per line (at most ``lines`` of them; missing lines read False)."""
        try:
            a = validate.array(bits, what, ndim=1, kinds="biu", lo=0, hi=1)
        except validate.InputError as e:
            raise ChipError(f"{e}: give one 0/1 (or bool) per line") from None
        if a.size > self.config.lines:
            raise ChipError(f"{what}: {a.size} values, the chip has {self.config.lines} lines")
        return a.astype(bool)

    def set_mask(self, core: int, tracked: np.ndarray) -> None:
        """Neurons tracked by the conversion (the rest read 0 and keep their register entry)."""
        core = self._check_core(core)
        words = layout.bits_to_words(self._line_bits(tracked, "neuron mask"), self.config.words_per_line_vector)
        key = ("NEURON_MASK", core)
        if self._mode_cache.get(key) != words.tobytes():
            self._buffer_write(R.Space.NEURON_MASK, core, words)
            self._mode_cache[key] = words.tobytes()

    def set_polarity(self, core: int, inverted: np.ndarray) -> None:
        core = self._check_core(core)
        bits = self._line_bits(inverted, "polarity")
        self._buffer_write(R.Space.POLARITY, core, layout.bits_to_words(bits, self.config.words_per_line_vector))

    def _side(self, side) -> str:
        if side not in ("bl", "sl"):
            raise ChipError(f"ternary register side {side!r}: use 'bl' (bitlines) or 'sl' (source lines)")
        return side

    def write_ternary(self, core: int, side: str, values) -> None:
        core, side = self._check_core(core), self._side(side)
        n = self.config.rows if side == "bl" else self.config.cols
        try:
            values = validate.array(values, f"{side} ternary values", ndim=1, kinds="biuf", lo=-1, hi=1, integral=True)
        except validate.InputError as e:
            raise ChipError(f"{e}: give -1, 0 or +1 per line") from None
        if values.size > n:
            raise ChipError(f"{side} ternary values: {values.size} values, the {side} side has {n} lines")
        space = R.Space.BL_REG if side == "bl" else R.Space.SL_REG
        self._buffer_write(space, core, layout.ternary_to_words(values.astype(np.int64),
                                                                 self.config.words_per_ternary_vector))

    def read_ternary(self, core: int, side: str) -> np.ndarray:
        core, side = self._check_core(core), self._side(side)
        space = R.Space.BL_REG if side == "bl" else R.Space.SL_REG
        n = self.config.rows if side == "bl" else self.config.cols
        return layout.words_to_ternary(self._buffer_read(space, core, self.config.words_per_ternary_vector), n)

    def counters(self, core: int) -> dict:
        core = self._check_core(core)
        return {name[6:].lower(): self.read_reg(name, core)
                for name in ("COUNT_MVM", "COUNT_PULSE", "COUNT_COMPARE", "COUNT_STEP", "COUNT_PROGRAM",
                             "COUNT_READ", "COUNT_BUSY")}

    def clear_counters(self) -> None:
        self.write_reg("CTRL", R.pack("CTRL", clear_counters=1))

    # -- MVMs --------------------------------------------------------------------------------------
    def set_mode(self, mode: MvmSettings) -> None:
        if not isinstance(mode, MvmSettings):
            raise ChipError(f"an MVM mode must be a neurram.spec.mvm.MvmSettings, not {type(mode).__name__}")
        if mode.input_bits > self.config.input_bits_max:
            raise ChipError(f"{mode.input_bits}-bit inputs: this chip takes at most {self.config.input_bits_max}")
        if mode.max_steps > self.config.max_steps_limit:
            raise ChipError(f"max_steps {mode.max_steps} above the chip's limit {self.config.max_steps_limit}")
        for name, value in mode.registers().items():
            self.write_reg_cached(name, value)

    def _validate_codes(self, codes: np.ndarray, mode: MvmSettings, lines: bool = True) -> np.ndarray:
        """Integer codes within the mode's input range (and, with ``lines``, no more than the array's input lines)."""
        if not isinstance(mode, MvmSettings):
            raise ChipError(f"an MVM mode must be a neurram.spec.mvm.MvmSettings, not {type(mode).__name__}")
        try:
            codes = np.asarray(codes)
        except (TypeError, ValueError) as e:
            raise ChipError(f"input codes are not an array: {e}") from None
        if codes.dtype.kind not in "biuf":
            raise ChipError(f"input codes of dtype {codes.dtype}: give integers (or whole floats)")
        if codes.ndim != 2:
            raise ChipError(f"input codes of shape {codes.shape}: give one vector or a (vectors, lines) array")
        if codes.dtype.kind == "f":
            if not np.isfinite(codes).all():
                raise ChipError("input codes contain NaN or infinity")
            if not np.array_equal(codes, np.round(codes)):
                raise ChipError("input codes must be integers")
        if codes.dtype.kind not in "iu" or codes.dtype.itemsize > 8 or codes.dtype == np.uint64:
            codes = codes.astype(np.int64)
        if mode.input_signed:
            top = (1 << (mode.input_bits - 1)) - 1
            lo = -top
        else:
            top, lo = (1 << mode.input_bits) - 1, 0
        if codes.size and (codes.min() < lo or codes.max() > top):
            raise ChipError(f"input codes span {codes.min()}..{codes.max()}, outside {lo}..{top} "
                            f"for {mode.input_bits}-bit {'signed' if mode.input_signed else 'unsigned'} inputs")
        n_in = self.config.rows if mode.direction != Direction.BACKWARD else self.config.cols
        if lines and codes.shape[-1] > n_in:
            raise ChipError(f"{codes.shape[-1]} input lines, the array has {n_in}")
        return codes

    def run_batch(self, core: int, codes: np.ndarray, mode: MvmSettings) -> np.ndarray:
        """One hardware batch (at most batch_depth vectors) on one core: output bytes (B, lines)."""
        core = self._check_core(core)
        codes = self._validate_codes(np.atleast_2d(codes), mode)
        B = codes.shape[0]
        if not 1 <= B <= self.config.batch_depth:
            raise ChipError(f"a batch holds 1..{self.config.batch_depth} vectors, not {B}")
        cfg = self.config
        full = np.zeros((B, cfg.lines), np.int64)
        full[:, :codes.shape[1]] = codes
        self.set_mode(mode)
        self.select_cores([core])
        self.write_reg_cached("BATCH", R.pack("BATCH", count=B, recurrent_steps=mode.recurrent_steps))
        for offset, words in layout.input_bursts(full, cfg, mode.input_signed, mode.input_bits):
            self._buffer_write(R.Space.INPUT, core, words, offset)
        self.start_and_wait()
        words = self._buffer_read(R.Space.OUTPUT, core, B * 8 * cfg.words_per_line_vector)
        return layout.output_bytes_from_words(words, cfg, B)

    def _set_stream_mode(self, mode: MvmSettings, n: int) -> None:
        """The settings of a stream transaction, BATCH's recurrent steps included (the
        transaction writes BATCH's count itself)."""
        self.set_mode(mode)
        self.write_reg_cached("BATCH", R.pack("BATCH", count=max(1, min(n, self.config.batch_depth)),
                                              recurrent_steps=mode.recurrent_steps))

    def start_and_wait(self, max_polls: int = 1_000_000) -> None:
        self.write_reg("CTRL", R.pack("CTRL", start=1))
        self.wait_idle("busy", max_polls, refused="the chip refused CTRL.start: check MVM_CONFIG, BATCH "
                                                  "and the enabled/selected cores", what="the batch")

    def wait_idle(self, busy_field: str, max_polls: int, *, refused: str, what: str) -> None:
        """Poll STATUS until ``busy_field`` clears; a set ``config_error`` raises ``refused``.

        After the first few polls the host backs off (0.1 ms doubling up to 10 ms): a simulated
        chip then runs free between polls instead of in step with them (a poll makes the
        co-simulation clock cycle by cycle while it answers), and a board's link stays quiet."""
        for k in range(max_polls):
            st = self.fields("STATUS")
            if st["config_error"]:
                raise ChipError(refused)
            if not st[busy_field]:
                return
            if k >= 2:
                time.sleep(min(0.01, 1e-4 * 2 ** (k - 2)))
        raise ChipError(f"timed out waiting for {what}")

    def mvm(self, core: int, codes: np.ndarray, mode: MvmSettings) -> np.ndarray:
        """Any number of input vectors through one core, batch after batch: output bytes (N, lines)."""
        core = self._check_core(core)
        codes = self._validate_codes(np.atleast_2d(codes), mode)
        if codes.shape[0] == 0:                # no vectors: no MVM, on every link
            return np.zeros((0, self.config.lines), np.uint8)
        stream = self.link.capabilities.mvm_stream
        if stream is not None:
            self._set_stream_mode(mode, codes.shape[0])
            try:
                return stream(core, codes, mode.input_signed)
            finally:   # the transaction wrote CORE_SELECT and BATCH
                self._forget("CORE_SELECT", "BATCH")
        depth = self.config.batch_depth
        out = [self.run_batch(core, codes[i:i + depth], mode) for i in range(0, codes.shape[0], depth)]
        return np.concatenate(out) if out else np.zeros((0, self.config.lines), np.uint8)

    def mvm_segment(self, core: int, codes: np.ndarray, drive: SegmentDrive, mode: MvmSettings) -> np.ndarray:
        """A stream of MVMs described compactly: the full input vectors are
        ``drive.full_codes(codes)`` and the tracked neurons exactly ``drive.outputs``; returns the
        output bytes of those neurons (N, len(drive.outputs)). Links that declare
        ``mvm_segment`` carry the compact form; on the others it is the same frames as :meth:`mvm`."""
        core = self._check_core(core)
        if not isinstance(drive, SegmentDrive):
            raise ChipError(f"a segment drive must be a neurram.spec.link.SegmentDrive, not {type(drive).__name__}")
        self._check_drive(drive, mode)
        codes = self._validate_codes(np.atleast_2d(codes), mode, lines=False)
        if codes.size and drive.source.size and drive.source.max() >= codes.shape[1]:
            raise ChipError(f"the drive reads input column {drive.source.max()}, the codes have {codes.shape[1]}")
        if codes.shape[0] == 0:                # no vectors: no MVM, on every link
            return np.zeros((0, len(drive.outputs)), np.uint8)
        self.set_mask(core, drive.tracked_mask(self.config.lines))
        segment = self.link.capabilities.mvm_segment
        if segment is None:
            n_in = self.config.rows if mode.direction != Direction.BACKWARD else self.config.cols
            return self.mvm(core, drive.full_codes(codes, n_in), mode)[:, drive.outputs]
        self._set_stream_mode(mode, codes.shape[0])
        try:
            return segment(core, codes, drive, mode.input_signed)
        finally:   # the transaction wrote CORE_SELECT and BATCH
            self._forget("CORE_SELECT", "BATCH")

    def _check_drive(self, drive: SegmentDrive, mode: MvmSettings) -> None:
        n_in = self.config.rows if mode.direction != Direction.BACKWARD else self.config.cols
        lines, outputs = np.asarray(drive.lines), np.asarray(drive.outputs)
        if lines.size and (lines.min() < 0 or lines.max() >= n_in or np.unique(lines).size != lines.size):
            raise ChipError(f"a segment drives input lines outside 0..{n_in - 1} or one line twice")
        if outputs.size and (outputs.min() < 0 or outputs.max() >= self.config.lines or np.any(np.diff(outputs) <= 0)):
            raise ChipError(f"a segment's outputs must be ascending lines within 0..{self.config.lines - 1}")
        self._validate_codes(np.asarray([[drive.constant]]), mode, lines=False)

    # -- cells ---------------------------------------------------------------------------------------
    def cell_access(self, core: int, read_mV: int = 150) -> "_CellAccess":
        core = self._check_core(core)
        f = R.REGISTERS["CELL_TIMING"]["read_mV"]
        if not (isinstance(read_mV, (int, np.integer)) and 1 <= read_mV <= f.max):
            raise ChipError(f"read voltage {read_mV!r} mV: use an integer 1..{f.max} mV (150 is the default; "
                            "0 V measures nothing)")
        return _CellAccess(self, core, int(read_mV))

    def has_engine(self) -> bool:
        """Whether the chip has the on-chip write-verify engine (FEATURES.wv_engine)."""
        return bool(self.fields("FEATURES")["wv_engine"])

    def program(self, core: int, g_target_uS: np.ndarray, *, rows=None, cols=None,
                config: WriteVerifyConfig = WriteVerifyConfig(), progress=None,
                engine: bool | None = None) -> WriteVerifyReport:
        """Program conductance targets (µS) by write-verify; returns the report of every cell.

        ``g_target_uS`` is the whole array (rows x cols) or, with ``rows``/``cols``, one target
        per listed cell. ``engine``: None (default) runs the chip's on-chip write-verify engine
        when it has one (targets and tolerance then in its 10 nS codes, one operation per block
        of ``wv_rows`` rows), True insists on it, False runs the host's loop over the single-cell
        registers.
        """
        return self.program_cores({core: (g_target_uS, rows, cols)}, config=config, progress=progress,
                                  engine=engine)[self._check_core(core)]

    def program_cores(self, targets: dict, *, config: WriteVerifyConfig = WriteVerifyConfig(), progress=None,
                      engine: bool | None = None) -> dict:
        """:meth:`program` on several cores: ``targets`` is {core: (g_target_uS, rows, cols)}
        (rows and cols None for the whole array). With the engine, the cores' engines run at the
        same time (the host keeps one operation going on every core); returns {core: report}.
        ``progress(done_cells, total_cells)`` after every operation."""
        if not isinstance(config, WriteVerifyConfig):
            raise ChipError(f"config must be a WriteVerifyConfig, not {type(config).__name__}")
        jobs = {}
        for core, (g, rows, cols) in targets.items():
            core = self._check_core(core)
            jobs[core] = self._program_args(g, rows, cols)
        if engine is None:
            engine = self.has_engine()
        elif engine and not self.has_engine():
            raise ChipError("this chip has no write-verify engine (FEATURES.wv_engine = 0): use engine=False")
        if not engine:
            reports, base, total = {}, 0, sum(j[0].size for j in jobs.values())
            for core, (rows, cols, g) in jobs.items():
                step = (lambda it, d, n, base=base: progress(base + d, total)) if progress else None
                reports[core] = write_verify(self.cell_access(core), rows, cols, g, config, progress=step)
                base += rows.size
            return reports
        return self._program_engine(jobs, config, progress)

    def _program_args(self, g_target_uS, rows, cols):
        """(rows, cols, targets) of one core's cells, checked."""
        try:
            g = validate.conductances(g_target_uS)
        except validate.InputError as e:
            raise ChipError(str(e)) from None
        if rows is None:
            if cols is not None:
                raise ChipError("give rows and cols together, or neither (targets for the whole array)")
            if g.shape != (self.config.rows, self.config.cols):
                raise ChipError(f"targets of shape {g.shape} do not fit a {self.config.rows} x {self.config.cols} array; "
                                "give the whole array or rows= and cols= with one target per cell")
            rows, cols = np.indices(g.shape)
        rows, cols = (self._cell_index(v, what, n) for v, what, n in
                      ((rows, "rows", self.config.rows), (cols, "cols", self.config.cols)))
        g = g.reshape(-1)
        if not rows.size == cols.size == g.size:
            raise ChipError(f"{rows.size} rows, {cols.size} cols and {g.size} targets: give one row, column and "
                            "target per cell")
        if rows.size and np.unique(rows * self.config.cols + cols).size != rows.size:
            raise ChipError("a cell appears more than once in rows/cols")
        return rows, cols, g

    def _program_engine(self, jobs: dict, config, progress) -> dict:
        """Write-verify by the on-chip engines: per core, blocks of ``wv_rows`` rows; with the
        byte protocol, one operation in flight on every core at once."""
        c = self.config
        tol = int(wv.uS_to_code(config.g_tol_uS))
        if not 1 <= tol <= 255:
            raise ChipError(f"g_tol_uS={config.g_tol_uS}: the engine takes tolerances of 0.01..2.55 µS")
        self.enable_cores(sorted(set(self.enabled_cores()) | set(jobs)))
        for name, fields in wv.engine_fields(config).items():
            self.write_reg_cached(name, R.pack(name, **{**self.fields(name), **fields}))
        self.write_reg_cached("CELL_TIMING", R.pack("CELL_TIMING", width_ns=int(round(config.width_ns)), read_mV=150))
        state = {}
        for core, (rows, cols, g) in jobs.items():
            r0 = int(rows.min()) if rows.size else 0
            n_rows = int(rows.max()) + 1 - r0 if rows.size else 0
            words = np.zeros(n_rows * c.cols, np.uint32)
            where = (rows - r0) * c.cols + cols
            words[where] = wv.target_word(wv.uS_to_code(g), tol)
            # Cells spread over few columns travel one row per operation (only the row's pending
            # words cross the link); otherwise wv_rows rows at a time.
            span = int(cols.max()) - int(cols.min()) + 1 if cols.size else c.cols
            step = 1 if span <= c.cols // 4 else c.wv_rows
            blocks = [(b, min(step, r0 + n_rows - b)) for b in range(r0, r0 + n_rows, step)]
            blocks = [(b, n) for b, n in blocks if words[(b - r0) * c.cols:(b - r0 + n) * c.cols].any()]
            state[core] = dict(r0=r0, words=words, result=words.copy(), where=where, blocks=blocks,
                               reads0=self.read_reg("COUNT_READ", core), ops=len(blocks), fresh=True)
        total = sum(j[0].size for j in jobs.values())
        bulk = self.link.capabilities.write_verify_rows
        if bulk is not None:
            self._forget("CELL_ADDR", "WV_LIMITS")
            for core, st in state.items():
                if st["words"].size:
                    st["result"] = bulk(core, st["r0"], st["words"])
            if progress is not None:
                progress(total, total)
        else:
            self._run_engine_blocks(state, progress, total)
        for core, st in state.items():
            st["reads"] = (self.read_reg("COUNT_READ", core) - st["reads0"]) % (1 << 32)
        return {core: self._engine_report(jobs[core], st, config) for core, st in state.items()}

    def _run_engine_blocks(self, state: dict, progress, total: int) -> None:
        """Keep one engine operation going on every core until every block is done."""
        c = self.config
        running, done_cells, polls = {}, 0, 0
        limits = self.fields("WV_LIMITS")            # read once: only its row count changes below
        while any(st["blocks"] for st in state.values()) or running:
            for core, st in state.items():
                if core in running or not st["blocks"]:
                    continue
                b, n = st["blocks"].pop(0)
                lo = (b - st["r0"]) * c.cols
                block = st["words"][lo:lo + n * c.cols]
                if st.pop("fresh", False):
                    # First operation on this core: the whole buffer, so that no stale target of
                    # an earlier user is left pending; afterwards every operation leaves its range
                    # without pending words, and only the span of the pending ones is sent.
                    whole = np.zeros(c.wv_rows * c.cols, np.uint32)
                    whole[:block.size] = block
                    self._buffer_write(R.Space.WV_CELLS, core, whole)
                    first, last = 0, block.size - 1
                else:
                    pending = np.flatnonzero(wv.unpack_targets(block)["pending"])
                    first, last = int(pending[0]), int(pending[-1])
                    self._buffer_write(R.Space.WV_CELLS, core, block[first:last + 1], offset=first)
                self.write_reg("CELL_ADDR", R.pack("CELL_ADDR", core=core, row=b, col=0))
                self.write_reg_cached("WV_LIMITS", R.pack("WV_LIMITS", **{**limits, "rows": n}))
                self.write_reg("CTRL", R.pack("CTRL", wv_start=1))
                if self.fields("STATUS")["config_error"]:
                    raise ChipError("write-verify operation refused: is the core enabled and are the WV "
                                    "registers a valid procedure?")
                running[core] = (lo, n, first, last)
            finished = [core for core in running if not self.fields("CORE_STATUS", core)["busy"]]
            for core in finished:
                lo, n, first, last = running.pop(core)
                st = state[core]
                st["result"][lo + first:lo + last + 1] = self._buffer_read(R.Space.WV_CELLS, core, last + 1 - first,
                                                                           offset=first)
                done_cells += int(np.count_nonzero(wv.unpack_targets(st["words"][lo:lo + n * c.cols])["pending"]))
                if progress is not None:
                    progress(done_cells, total)
            polls = 0 if finished else polls + 1
            if polls >= 2:            # back off while every engine is busy (see wait_idle)
                time.sleep(min(0.01, 1e-4 * 2 ** (polls - 2)))

    def _engine_report(self, job, st, config) -> WriteVerifyReport:
        rows, cols, g_uS = job
        res = wv.unpack_result(st["result"][st["where"]])
        status = res["status"]
        fail = np.select([status == WvStatus.FAIL_ROUNDS, status == WvStatus.FAIL_TOP_PULSES],
                         [FAIL_ROUNDS, FAIL_TOP_PULSES], FAIL_NONE).astype(np.int8)
        return WriteVerifyReport(rows=rows, cols=cols, targets=np.asarray(g_uS, np.float64).copy(),
                                 final_g=res["g_10nS"] * wv.G_LSB_uS, converged=status == WvStatus.CONVERGED,
                                 pulses=res["pulses"], set_pulses=None, reset_pulses=None, rounds=None,
                                 fail_reason=fail, reads=int(st["reads"]), iterations=st["ops"], config=config)

    @staticmethod
    def _cell_index(v, what: str, n: int) -> np.ndarray:
        try:
            a = validate.array(v, f"cell {what}", kinds="iuf", lo=0, hi=n - 1, integral=True)
        except validate.InputError as e:
            raise ChipError(f"{e}: the array has {what} 0..{n - 1}") from None
        return a.reshape(-1).astype(np.int64)


class _CellAccess:
    """write-verify's CellAccess over the chip's single-cell registers (or a link's bulk path)."""

    def __init__(self, chip: Chip, core: int, read_mV: int):
        self.chip, self.core, self.read_mV = chip, core, read_mV
        chip.ensure_enabled(core)

    def _cells(self, rows, cols):
        """Cell indices checked against the array (ChipError otherwise), flattened."""
        c = self.chip.config
        rows, cols = Chip._cell_index(rows, "rows", c.rows), Chip._cell_index(cols, "cols", c.cols)
        if rows.size != cols.size:
            raise ChipError(f"{rows.size} rows and {cols.size} cols: give one row and one column per cell")
        return rows, cols

    def read_cells(self, rows, cols) -> np.ndarray:
        rows, cols = self._cells(rows, cols)
        bulk = self.chip.link.capabilities.cell_reads
        if bulk is not None:
            self.chip._forget("CELL_ADDR", "CELL_TIMING")
            return bulk(self.core, rows, cols, self.read_mV) * 0.01
        c = self.chip
        c.write_reg_cached("CELL_TIMING", R.pack("CELL_TIMING", width_ns=1000, read_mV=self.read_mV))
        out = np.empty(rows.size)
        for k, (r, q) in enumerate(zip(rows, cols)):
            c.write_reg("CELL_ADDR", R.pack("CELL_ADDR", core=self.core, row=int(r), col=int(q)))
            c.write_reg("CTRL", R.pack("CTRL", cell_read=1))
            _wait_cell(c)
            out[k] = c.fields("CELL_RESULT")["g_10nS"] * 0.01
        return out

    def pulse_cells(self, rows, cols, polarity, amplitude_mV, width_ns, gate_mV) -> None:
        rows, cols = self._cells(rows, cols)
        n = rows.size
        try:
            polarity, amplitude_mV, width_ns, gate_mV = (np.broadcast_to(np.asarray(v), (n,))
                                                         for v in (polarity, amplitude_mV, width_ns, gate_mV))
        except ValueError:
            raise ChipError(f"pulse settings do not broadcast to the {n} cells: give one value or one per cell") from None
        for name, v, reg, field, to_int in (("polarity", polarity, "CELL_PULSE", "polarity", np.asarray),
                                            ("amplitude_mV", amplitude_mV, "CELL_PULSE", "amplitude_mV", np.round),
                                            ("gate_mV", gate_mV, "CELL_PULSE", "gate_mV", np.round),
                                            ("width_ns", width_ns, "CELL_TIMING", "width_ns", np.trunc)):
            top = R.REGISTERS[reg][field].max
            try:
                a = validate.array(v, f"pulse {name}", kinds="biuf")
            except validate.InputError as e:
                raise ChipError(str(e)) from None
            if n and (to_int(a).min() < 0 or to_int(a).max() > top):
                raise ChipError(f"pulse {name} spans {a.min()}..{a.max()}, outside {reg}.{field}'s range 0..{top}")
        bulk = self.chip.link.capabilities.cell_pulses
        if bulk is not None:
            self.chip._forget("CELL_ADDR", "CELL_PULSE", "CELL_TIMING")
            return bulk(self.core, rows, cols, polarity, amplitude_mV, width_ns, gate_mV)
        c = self.chip
        for k in range(n):
            c.write_reg("CELL_ADDR", R.pack("CELL_ADDR", core=self.core, row=int(rows[k]), col=int(cols[k])))
            c.write_reg_cached("CELL_PULSE", R.pack("CELL_PULSE", polarity=int(polarity[k]),
                                                    amplitude_mV=int(round(float(amplitude_mV[k]))),
                                                    gate_mV=int(round(float(gate_mV[k])))))
            c.write_reg_cached("CELL_TIMING", R.pack("CELL_TIMING", width_ns=int(width_ns[k]), read_mV=self.read_mV))
            c.write_reg("CTRL", R.pack("CTRL", cell_program=1))
            _wait_cell(c)


def _wait_cell(chip: Chip, max_polls: int = 100_000) -> None:
    chip.wait_idle("cell_busy", max_polls, refused="cell command refused: is the core enabled?",
                   what="a cell operation")
