"""The fast transaction-level chip model.

:class:`FastChip` executes the chip's bus semantics exactly as the RTL does (``hdl/chip.py``,
``hdl/core.py``, the generated register file): the same registers with the same access rules,
the same buffers in the same layouts, the same start checks, the same event counters (busy
cycles included), with every analog behaviour from ``neurram.models``. A batch of MVMs on a
core is one vectorised call (:func:`neurram.sim.fastcore.run_batch`), so full test sets run in
seconds. Batches complete instantly in host time; the chip's own time is kept in cycles
(:attr:`FastChip.cycles`) from the same timing the RTL has.

The host reaches it through the framed protocol: :meth:`FastChip.handle_bytes` is the chip side
of the byte protocol (``docs/protocol.md``), and :meth:`FastChip.request` is the same engine
without serialisation, which the in-process link uses with numpy arrays as payloads.
"""

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from neurram.config import ChipConfig
from neurram.models.core import AnalogCore, AnalogParams
from neurram.models.energy import busy_cycles_per_mvm as _cycle_model
from neurram.spec import layout
from neurram.spec import regmap as R
from neurram.spec.enums import Conversion, Direction, InputSource, PulsePolarity
from neurram.spec.errors import ChipError
from neurram.spec.mvm import MvmSettings, start_ok
from neurram.spec.protocol import DEFAULT_MAX_WORDS, AddressMap, ProtocolServer, split_address
from neurram.spec import writeverify as wv

from .fastcore import NoiseAutomaton, run_batch

__all__ = ["FastChip", "ChipProtocolEngine", "busy_cycles_per_mvm"]
_COUNTERS = ("mvm", "pulse", "compare", "step", "program", "read", "busy")
_MASK32 = 0xFFFFFFFF


def raise_refused(why: str = "CTRL.start refused: check MVM_CONFIG, BATCH and the enabled/selected cores"):
    raise ChipError(why)


def busy_cycles_per_mvm(s: MvmSettings, steps: np.ndarray) -> np.ndarray:
    """Busy cycles the RTL core controller spends per MVM, for each MVM's conversion steps
    (the cycle model lives with the energy model: models.energy.busy_cycles_per_mvm)."""
    base = _cycle_model(s.input_bits, signed=s.input_signed, pulse_multiplier=s.pulse_multiplier,
                        conversion=s.conversion, output_bits=s.output_bits, steps=0,
                        ternary=s.input_source == InputSource.TERNARY)
    steps = np.asarray(steps)
    return base + (3 * steps if s.conversion == Conversion.DECREMENT else 0 * steps)


@dataclass
class _Core:
    model: AnalogCore
    input_words: np.ndarray
    output_words: np.ndarray
    bl_act: np.ndarray
    bl_neg: np.ndarray
    sl_act: np.ndarray
    sl_neg: np.ndarray
    mask: np.ndarray
    polarity: np.ndarray
    counters: dict
    cell_result: int = 0
    cell_valid: int = 0
    batch_index: int = 0
    automaton: object = None
    programmed: bool = False          # cells programmed since the last relaxation
    wv_words: np.ndarray = None       # the WV_CELLS buffer


class _Cores:
    """The chip's cores, each built on first access (a 48-core chip running a network on a few
    cores builds only those; the others would be in their power-on state anyway)."""

    def __init__(self, n: int, build):
        self._cores = [None] * n
        self._build = build

    def __len__(self) -> int:
        return len(self._cores)

    def __getitem__(self, i: int) -> _Core:
        core = self._cores[i]
        if core is None:
            core = self._cores[i] = self._build(i)
        return core

    def __iter__(self):
        return (self[i] for i in range(len(self._cores)))

    def built(self):
        """The cores built so far."""
        return [c for c in self._cores if c is not None]


class FastChip:
    """A chip instance in this process. ``params`` selects the analog behaviour (default: the
    calibrated noise model); cores are seeded ``seed * 1000 + index`` like the co-simulation."""

    def __init__(self, config: ChipConfig | None = None, params: AnalogParams | None = None, seed: int = 0,
                 age_s: float = 0.0, state_path=None, state_clock=None):
        self.config = config or ChipConfig()
        self.params = params if params is not None else AnalogParams()
        self.seed = seed
        #: Time between programming and inference: before the first MVM after programming, each
        #: programmed core's conductances relax for this long (models.device relaxation).
        self.age_s = age_s
        self.cycles = 0
        self._regs = {}
        #: The identification registers' words (constants of the configuration).
        self._ident_words = R.identification(self.config)
        #: Registers of the features a reduced chip was built without (ChipConfig build options).
        self._absent = R.absent_registers(self.config)
        self.reset()
        #: Non-volatile state (sim/state.py): the file this chip keeps its programmed state in,
        #: and the seconds its cells relaxed on opening it (wall-clock time since it was written).
        self.state = None
        self.state_elapsed_s = 0.0
        if state_path is not None:
            self._open_state(state_path, state_clock)

    # -- state ---------------------------------------------------------------------------------
    def _open_state(self, path, clock=None) -> None:
        import atexit
        import time
        import weakref

        from .state import StateFile

        self.state = StateFile(path, clock or time.time)
        self.state_elapsed_s = self.state.load(self)
        self._state_dirty = set()          # cores programmed since the last save
        self._state_last = 0.0
        atexit.register(_close_at_exit, weakref.ref(self))

    def save_state(self, cores=None, force: bool = True) -> None:
        """Write the non-volatile state to the state file after a programming operation on
        ``cores`` (their device files and the manifest; None: every core). A single
        CTRL.cell_program (``force=False``) writes at most once a second; the cores it touched
        go with the next save."""
        if self.state is None:
            return
        import time

        self._state_dirty = None if cores is None or self._state_dirty is None else self._state_dirty | set(cores)
        now = time.monotonic()
        if not force and now - self._state_last < 1.0:
            return
        if self.state.save(self, self._state_dirty):
            self._state_dirty = set()
            self._state_last = now

    def close(self) -> None:
        """Clean shutdown: the non-volatile state goes to the state file (if the chip has one)."""
        if self.state is not None:
            self.save_state()

    def core_seed(self, i: int) -> int:
        return self.seed * 1000 + i

    def reset(self) -> None:
        """Power-on reset: registers to their reset values, buffers cleared, fresh analog cores."""
        c = self.config
        self._regs = {}
        for reg in R.REGISTERS.values():
            if reg.access == "RW":
                n = c.n_cores if reg.index == "core" else reg.count
                for i in range(n):
                    self._regs[reg.address(i)] = reg.reset
        self._status = dict(busy=0, done=0, cell_busy=0, cell_done=0, config_error=0)
        self.cores = _Cores(c.n_cores, self._new_core)

    def _new_core(self, i: int) -> "_Core":
        """Core i in its power-on state (built when first touched: an untouched core is in it)."""
        c = self.config
        L, wplv = c.lines, c.words_per_line_vector
        return _Core(model=AnalogCore(c.rows, c.cols, self.params, seed=self.core_seed(i)),
                     input_words=np.zeros(c.batch_depth * c.input_planes * wplv, np.uint32),
                     output_words=np.zeros(c.batch_depth * 8 * wplv, np.uint32),
                     bl_act=np.zeros(c.rows, bool), bl_neg=np.zeros(c.rows, bool),
                     sl_act=np.zeros(c.cols, bool), sl_neg=np.zeros(c.cols, bool),
                     mask=np.ones(L, bool), polarity=np.zeros(L, bool),
                     counters={k: 0 for k in _COUNTERS}, automaton=NoiseAutomaton(L),
                     wv_words=np.zeros(c.wv_rows * c.cols, np.uint32))

    def _reg(self, name: str, i: int = 0) -> dict:
        return R.unpack(name, self._regs[R.REGISTERS[name].address(i)])

    def _mask_bits(self, name: str) -> np.ndarray:
        n = self.config.n_cores
        reg = R.REGISTERS[name]
        words = np.asarray([self._regs[reg.address(w)] for w in range((n + 31) // 32)], np.uint64)
        return ((words[np.arange(n) // 32] >> (np.arange(n) % 32).astype(np.uint64)) & np.uint64(1)).astype(bool)

    # -- identification -------------------------------------------------------------------------
    def _ident(self, name: str) -> int:
        return self._ident_words[name]

    # -- the word bus ----------------------------------------------------------------------------
    def read(self, addr: int) -> int:
        space, core, offset = split_address(addr)
        if space == 0:
            return self._read_reg(offset & 0xFFFF)
        return int(self._buffer_read(space, core, offset, 1)[0])

    def write(self, addr: int, data: int) -> None:
        space, core, offset = split_address(addr)
        if space == 0:
            self._write_reg(offset & 0xFFFF, int(data) & _MASK32)
        else:
            self._buffer_write(space, core, offset, np.asarray([data], np.uint32))

    def _find_reg(self, offset: int):
        """(register, index) at a register offset; (None, 0) where the chip has none, including the
        registers of features it was built without (they read 0 and ignore writes, as on the RTL)."""
        for reg in R.REGISTERS.values():
            if reg.name in self._absent:
                continue
            n = self.config.n_cores if reg.index == "core" else reg.count
            if reg.count == 1:
                if offset == reg.offset:
                    return reg, 0
            elif reg.offset <= offset < reg.offset + n * reg.stride and (offset - reg.offset) % reg.stride == 0:
                return reg, (offset - reg.offset) // reg.stride
        return None, 0

    def _read_reg(self, offset: int) -> int:
        reg, i = self._find_reg(offset)
        if reg is None or reg.access == "WS":
            return 0
        if reg.name in R.ID_REGISTERS:
            return self._ident(reg.name)
        if reg.access == "RW":
            return self._regs[offset]
        core = self.cores[i] if reg.index == "core" else None
        if reg.name == "STATUS":
            return R.pack("STATUS", **self._status)
        if reg.name == "CELL_RESULT":
            cc = self.cores[self._cell_core()] if self._cell_core() < self.config.n_cores else None
            return R.pack("CELL_RESULT", g_10nS=cc.cell_result if cc else 0, valid=cc.cell_valid if cc else 0)
        if reg.name == "CORE_STATUS":
            return R.pack("CORE_STATUS", busy=0, enabled=int(self._mask_bits("CORE_ENABLE")[i]),
                          batch_index=core.batch_index)
        if reg.name.startswith("COUNT_"):
            return core.counters[reg.name[6:].lower()] & _MASK32
        return 0

    def _write_reg(self, offset: int, data: int) -> None:
        reg, i = self._find_reg(offset)
        if reg is None or reg.access == "RO" or reg.name in R.ID_REGISTERS:
            return
        if reg.access == "RW":
            value = data & reg.mask
            if reg.index == "word":          # enables/selects of cores that do not exist stay 0
                n = self.config.n_cores - 32 * i
                value &= (1 << max(0, min(32, n))) - 1
            self._regs[offset] = value
            return
        fields = R.unpack(reg.name, data)          # CTRL
        if fields["clear_counters"]:
            for core in self.cores.built():
                core.counters = {k: 0 for k in _COUNTERS}
        if fields["cell_program"] or fields["cell_read"]:
            self._cell_command(bool(fields["cell_program"]))
        elif fields["wv_start"]:
            self._wv_command()
        if fields["start"]:
            self._start()

    # -- buffers ---------------------------------------------------------------------------------
    def _buffer_read(self, space: int, core: int, offset: int, count: int) -> np.ndarray:
        c = self.config
        if core >= c.n_cores:
            return np.zeros(count, np.uint32)
        k = self.cores[core]
        name = R.Space(space).name
        if name == "INPUT":
            src = k.input_words
        elif name == "WV_CELLS":
            src = k.wv_words
        elif name == "OUTPUT":
            src = k.output_words
        elif name in ("BL_REG", "SL_REG"):
            act, neg = (k.bl_act, k.bl_neg) if name == "BL_REG" else (k.sl_act, k.sl_neg)
            src = layout.ternary_to_words(np.where(act, np.where(neg, -1, 1), 0), c.words_per_ternary_vector)
        else:
            src = layout.bits_to_words(k.mask if name == "NEURON_MASK" else k.polarity, c.words_per_line_vector)
        out = np.zeros(count, np.uint32)
        avail = src[offset:offset + count]
        out[:avail.size] = avail
        return out

    def _buffer_write(self, space: int, core: int, offset: int, words: np.ndarray) -> None:
        c = self.config
        if core == R.BROADCAST_CORE:
            targets = np.flatnonzero(self._mask_bits("CORE_SELECT")).tolist()
        elif core < c.n_cores:
            targets = [core]
        else:
            return
        name = R.Space(space).name
        for i in targets:
            k = self.cores[i]
            if name in ("INPUT", "WV_CELLS"):
                dst = k.input_words if name == "INPUT" else k.wv_words
                dst[offset:offset + words.size] = words[: max(0, dst.size - offset)]
            elif name in ("BL_REG", "SL_REG"):
                act, neg = (k.bl_act, k.bl_neg) if name == "BL_REG" else (k.sl_act, k.sl_neg)
                cur = layout.ternary_to_words(np.where(act, np.where(neg, -1, 1), 0), c.words_per_ternary_vector)
                cur[offset:offset + words.size] = words[: max(0, cur.size - offset)]
                t = layout.words_to_ternary(cur, act.size)
                act[:] = t != 0
                neg[:] = t < 0
            elif name in ("NEURON_MASK", "POLARITY"):
                dst = k.mask if name == "NEURON_MASK" else k.polarity
                cur = layout.bits_to_words(dst, c.words_per_line_vector)
                cur[offset:offset + words.size] = words[: max(0, cur.size - offset)]
                dst[:] = layout.words_to_bits(cur, dst.size)

    def write_buffer(self, space: int, core: int, offset: int, words) -> None:
        """Bulk write (the in-process link's fast path): same semantics as word-by-word writes."""
        self._buffer_write(int(space), core, offset, np.asarray(words, np.uint32).reshape(-1))

    def read_buffer(self, space: int, core: int, offset: int, count: int) -> np.ndarray:
        return self._buffer_read(int(space), core, offset, count)

    # -- commands --------------------------------------------------------------------------------
    def _cell_core(self) -> int:
        return self._reg("CELL_ADDR")["core"]

    def _cell_command(self, program: bool) -> None:
        i = self._cell_core()
        enabled = i < self.config.n_cores and self._mask_bits("CORE_ENABLE")[i]
        # A read at 0 mV measures nothing: refused like a disabled core (CELL_RESULT keeps its value).
        enabled = enabled and (program or self._reg("CELL_TIMING")["read_mV"] > 0)
        self._status["config_error"] = int(not enabled)
        if not enabled:
            self._status.update(cell_busy=0, cell_done=1)
            return
        k = self.cores[i]
        a, p, t = self._reg("CELL_ADDR"), self._reg("CELL_PULSE"), self._reg("CELL_TIMING")
        if a["row"] >= self.config.rows or a["col"] >= self.config.cols:
            # The RTL's array ignores out-of-range cells; reads return 0.
            if not program:
                k.cell_result, k.cell_valid = 0, 1
                k.counters["read"] += 1
            else:
                k.counters["program"] += 1
        elif program:
            k.model.program_pulse(a["row"], a["col"], PulsePolarity(p["polarity"]), p["amplitude_mV"], t["width_ns"],
                                  p["gate_mV"])
            k.programmed = True
            k.counters["program"] += 1
            self._status.update(cell_busy=0, cell_done=1)
            self.save_state([i], force=False)
            return
        else:
            k.cell_result = int(k.model.read_cell(a["row"], a["col"], t["read_mV"]))
            k.cell_valid = 1
            k.counters["read"] += 1
        self._status.update(cell_busy=0, cell_done=1)

    def settings(self) -> MvmSettings:
        return MvmSettings.from_registers({name: self._regs[R.REGISTERS[name].address()] for name in
                                           ("MVM_CONFIG", "MVM_TIMING", "NEURON_CONFIG", "BATCH")})

    def config_ok(self) -> bool:
        """The start check of CTRL.start (the RTL evaluates the same rule, neurram.spec.mvm.start_ok)."""
        ready = (self._mask_bits("CORE_SELECT") & self._mask_bits("CORE_ENABLE")).any()
        try:
            s = self.settings()
        except ValueError:              # a mode field's code names no mode: start_ok refuses those
            return False
        return bool(start_ok(s, self.config, self._reg("BATCH")["count"], ready))

    def _start(self) -> None:
        ok = self.config_ok()
        self._status.update(done=0, config_error=int(not ok))
        if not ok:
            return
        sel = np.flatnonzero(self._mask_bits("CORE_SELECT") & self._mask_bits("CORE_ENABLE"))
        s = self.settings()
        count = self._reg("BATCH")["count"]
        longest = 0
        for i in sel:
            longest = max(longest, self._run_core(int(i), s, count)[0])
        self.cycles += longest
        self._status.update(busy=0, done=1)

    def _buffer_codes(self, k, s: MvmSettings, count: int) -> np.ndarray:
        """Input codes of a batch from the core's INPUT buffer (bit-planes)."""
        c = self.config
        wplv, P = c.words_per_line_vector, c.input_planes
        words = k.input_words.reshape(P, c.batch_depth, wplv)[:, :count].transpose(1, 0, 2)
        planes = layout.words_to_bits(words, c.lines)                      # (B, P, lines)
        n_bits = s.input_bits - int(s.input_signed)
        mag = np.einsum("bpl,p->bl", planes[:, :n_bits].astype(np.int64), 1 << np.arange(n_bits, dtype=np.int64))
        return np.where(planes[:, P - 1], -mag, mag) if s.input_signed else mag

    def _run_core(self, i: int, s: MvmSettings, count: int, codes: np.ndarray | None = None,
                  write_outputs: bool = True, drive=None):
        """Run a batch on core i (codes from the INPUT buffer unless given; compact codes with a
        SegmentDrive); returns (cycles, result)."""
        c = self.config
        k = self.cores[i]
        if k.programmed and self.age_s > 0:
            k.model.relax(self.age_s)
        k.programmed = False
        bias, neuron = self._reg("CORE_BIAS", i), self._reg("CORE_NEURON", i)
        # The lines that carry the inputs: recurrent MVMs run forward.
        direction = Direction.BACKWARD if s.direction == Direction.BACKWARD else Direction.FORWARD
        kw = dict(mask=k.mask, polarity=k.polarity, v_pos_mV=bias["v_pos_mV"], v_neg_mV=bias["v_neg_mV"],
                  packet_uV=neuron["packet_uV"], noise_uV=self._reg("STOCHASTIC")["noise_uV"],
                  input_planes=c.input_planes)
        if s.stochastic:                 # the RTL seeds (and mixes) its automaton at every start
            k.automaton.seed(self._reg("LFSR_SEED")["seed"], i)
            kw["automaton"] = k.automaton
        if s.input_source == InputSource.TERNARY:
            act, neg = (k.bl_act, k.bl_neg) if direction == Direction.FORWARD else (k.sl_act, k.sl_neg)
            ternary = np.where(act, np.where(neg, -1, 1), 0)
            res = run_batch(k.model, s, codes=np.zeros((count, 1), np.int64), ternary=ternary, **kw)
        else:
            if codes is None:
                codes = self._buffer_codes(k, s, count)
            res = run_batch(k.model, s, codes=codes, drive=drive, **kw)
        if write_outputs:
            k.output_words[: count * 8 * c.words_per_line_vector] = \
                layout.output_words(res.outputs, c.words_per_line_vector)
        # The input-side register keeps the last phase driven: phase 1 of the top magnitude bit
        # of the last vector (every line driven; -1 where not positive, inverted by polarity).
        compact = drive is not None
        if s.input_source == InputSource.BUFFER and res.last_inputs is not None:
            # recurrent: the write-backs replaced the vectors' inputs in the INPUT buffer
            full_last = np.zeros((count, c.lines), np.int64)
            full_last[:, :res.last_inputs.shape[1]] = res.last_inputs
            if s.direction == Direction.RECURRENT and s.recurrent_steps > 1 and write_outputs:
                # REC_WB writes every plane of each vector's slot
                buf = k.input_words.reshape(c.input_planes, c.batch_depth, c.words_per_line_vector)
                new = layout.input_words(full_last, c, s.input_signed).reshape(buf.shape)
                buf[:, :count] = new[:, :count]
            codes, compact = full_last, False
        if s.input_source == InputSource.BUFFER:
            last = np.zeros(c.lines, np.int64)
            if compact:
                last[:] = drive.full_codes(codes[-1:], c.lines)[0]
            else:
                last[: codes.shape[1]] = codes[-1]
            n_bits = s.input_bits - int(s.input_signed)
            if s.input_signed:
                positive = ~(((np.abs(last) >> max(n_bits - 1, 0)) & 1).astype(bool) & (last < 0))
            else:
                positive = np.ones(c.lines, bool)
            drive_neg = ~(positive ^ k.polarity)
            if direction == Direction.FORWARD:
                k.bl_act[:] = True
                k.bl_neg[:] = drive_neg[: c.rows]
            else:
                k.sl_act[:] = True
                k.sl_neg[:] = drive_neg[: c.cols]
        # The output-side register holds the comparators the tracked neurons latched last (last
        # MVM of the batch); entries of untracked neurons keep their value.
        latch_neg = res.final_negative
        act, neg = (k.sl_act, k.sl_neg) if direction == Direction.FORWARD else (k.bl_act, k.bl_neg)
        mk = k.mask[: act.size]
        act |= mk
        neg[:] = np.where(mk, latch_neg[: act.size], neg)
        for key, v in res.counts.items():
            k.counters[key] += int(v)
        cycles = int(busy_cycles_per_mvm(s, res.steps).sum()) + res.extra_cycles
        k.counters["busy"] += cycles
        k.batch_index = count
        return cycles, res

    # -- bulk transactions (the in-process link's fast paths) -------------------------------------
    def stream_batches(self, core: int, codes: np.ndarray, signed: bool) -> np.ndarray:
        """Equivalent of, for each chunk of batch_depth vectors: select the core, write the INPUT
        buffer and BATCH, CTRL.start, read the OUTPUT buffer. Returns the output bytes (N, lines)."""
        return self._stream(core, np.atleast_2d(np.asarray(codes, np.int64)), signed, None)

    def stream_segment(self, core: int, codes: np.ndarray, drive, signed: bool) -> np.ndarray:
        """:meth:`stream_batches` of the full vectors ``drive.full_codes(codes)`` (a
        :class:`neurram.spec.link.SegmentDrive`), returning the output bytes of ``drive.outputs``
        only (N, outputs). Computed from the compact codes: only the driven lines' inputs and
        the tracked neurons' outputs are touched."""
        return self._stream(core, np.atleast_2d(np.asarray(codes)), signed, drive)

    def _stream(self, core: int, codes: np.ndarray, signed: bool, drive) -> np.ndarray:
        c = self.config
        N = codes.shape[0]

        def full(rows):
            if drive is not None:
                return drive.full_codes(codes[rows], c.lines)
            out = np.zeros((len(codes[rows]), c.lines), np.int64)
            out[:, :codes.shape[1]] = codes[rows]
            return out

        depth = c.batch_depth
        sel = R.REGISTERS["CORE_SELECT"]
        self._regs[sel.address(0)] = (1 << core) & 0xFFFFFFFF
        if c.n_cores > 32:
            self._regs[sel.address(1)] = (1 << core) >> 32
        k = self.cores[core]
        s = self.settings()
        starts = list(range(0, N, depth))
        if s.stochastic or s.direction == Direction.RECURRENT:
            # Each start reseeds the stochastic neurons and writes recurrent outputs back into
            # the INPUT buffer: run the chunks one after the other, as the frames would.
            outs = []
            for st in starts:
                chunk = full(slice(st, st + depth))
                for off, words in layout.input_bursts(chunk, c, signed, s.input_bits):
                    k.input_words[off:off + words.size] = words
                self._regs[R.REGISTERS["BATCH"].address()] = R.pack("BATCH", count=len(chunk),
                                                                    recurrent_steps=s.recurrent_steps)
                if not self.config_ok():
                    self._status.update(done=0, config_error=1)
                    raise_refused()
                cycles, res = self._run_core(core, s, len(chunk))
                self.cycles += cycles
                outs.append(res.outputs)
            self._status.update(busy=0, done=1, config_error=0)
            out = np.concatenate(outs) if outs else np.zeros((0, c.lines), np.uint8)
            return out if drive is None else out[:, np.asarray(drive.outputs)]
        # The chunks' buffer writes, last two only (earlier ones are overwritten).
        for st in starts[-2:]:
            for off, words in layout.input_bursts(full(slice(st, st + depth)), c, signed, s.input_bits):
                k.input_words[off:off + words.size] = words
        self._regs[R.REGISTERS["BATCH"].address()] = R.pack("BATCH", count=N - starts[-1] if starts else 1,
                                                            recurrent_steps=s.recurrent_steps)
        if not self.config_ok():
            self._status.update(done=0, config_error=1)
            raise_refused()
        # One vectorised call for every chunk: same draws in the same order as chunk after chunk.
        cycles, res = self._run_core(core, s, N, codes=codes if drive is not None else full(slice(None)),
                                     write_outputs=False, drive=drive)

        def output_lines(rows):
            if res.columns is None:
                return res.outputs[rows]
            out = np.zeros((len(res.outputs[rows]), c.lines), np.uint8)
            out[:, res.columns] = res.outputs[rows]
            return out

        w = 8 * c.words_per_line_vector
        for st in starts[-2:]:
            n = min(N, st + depth) - st
            k.output_words[: n * w] = layout.output_words(output_lines(slice(st, st + n)), c.words_per_line_vector)
        k.batch_index = N - starts[-1] if starts else 0
        self.cycles += cycles
        self._status.update(busy=0, done=1, config_error=0)
        if drive is None:
            return res.outputs
        if res.columns is not None and np.array_equal(res.columns, drive.outputs):
            return res.outputs
        return output_lines(slice(None))[:, np.asarray(drive.outputs)]

    # -- copies in worker processes --------------------------------------------------------------
    def skip_mvms(self, counts: dict) -> None:
        """Advance cores' MVM sequences as if ``counts[core]`` MVMs had run on them: the read
        noise is a function of each MVM's index, the only state an MVM leaves in the analog
        model (the stochastic neurons' automaton is reseeded at every start)."""
        for core, n in counts.items():
            self.cores[core].model.mvm_count += int(n)

    def add_events(self, counters: dict, cycles: int) -> None:
        """Add events that a copy of this chip counted ({core: {counter: n}}) and its cycles."""
        for core, d in counters.items():
            k = self.cores[core]
            for key, n in d.items():
                k.counters[key] += int(n)
        self.cycles += int(cycles)

    def _cell_regs(self, core, row, col, polarity=None, amplitude_mV=None, width_ns=None, gate_mV=None,
                   read_mV=None):
        self._regs[R.REGISTERS["CELL_ADDR"].address()] = R.pack("CELL_ADDR", core=core, row=int(row), col=int(col))
        if polarity is not None:
            self._regs[R.REGISTERS["CELL_PULSE"].address()] = R.pack(
                "CELL_PULSE", polarity=int(polarity), amplitude_mV=int(round(float(amplitude_mV))),
                gate_mV=int(round(float(gate_mV))))
        t = self._reg("CELL_TIMING")
        self._regs[R.REGISTERS["CELL_TIMING"].address()] = R.pack(
            "CELL_TIMING", width_ns=int(width_ns) if width_ns is not None else t["width_ns"],
            read_mV=int(read_mV) if read_mV is not None else t["read_mV"])

    # -- the on-chip write-verify engine ---------------------------------------------------------
    def _wv_settings(self, row: int, rows: int):
        """(fields, ok) of an operation on ``rows`` rows from ``row`` with the present registers."""
        f = wv.wv_fields(self._reg)
        f["rows"] = rows
        t = self._reg("CELL_TIMING")
        ok = bool(wv.wv_start_ok(SimpleNamespace(**f), self.config, row, t["read_mV"], t["width_ns"]))
        return f, t, ok

    def _wv_command(self) -> None:
        """CTRL.wv_start: the engine programs the pending cells of WV_CELLS on CELL_ADDR.row and
        the WV_LIMITS.rows - 1 rows below it, and replaces their words with results."""
        i, row = self._cell_core(), self._reg("CELL_ADDR")["row"]
        f, t, ok = self._wv_settings(row, self._reg("WV_LIMITS")["rows"])
        ok = ok and i < self.config.n_cores and bool(self._mask_bits("CORE_ENABLE")[i])
        self._status.update(cell_busy=0, cell_done=1, config_error=int(not ok))
        if ok:
            k = self.cores[i]
            n = f["rows"] * self.config.cols
            k.wv_words[:n] = self._wv_run(k, row, k.wv_words[:n], f, t)
            self.save_state([i])

    def _wv_run(self, k: _Core, row: int, words: np.ndarray, f: dict, t: dict) -> np.ndarray:
        """Run the engine over ``words`` (row-major from ``row``); returns the words after it.
        Each cell's pulses and reads draw from the cell's own counters (models.device), so the
        cells run at once here give the bits the RTL's one-at-a-time engine gives."""
        tgt = wv.unpack_targets(words)
        idx = np.flatnonzero(tgt["pending"])
        out = words.copy()
        if idx.size == 0:
            return out
        cols = self.config.cols
        rep = wv.write_verify_codes(_EngineCells(k.model, t["read_mV"]), row + idx // cols, idx % cols,
                                    tgt["g_10nS"][idx], tgt["tol_10nS"][idx],
                                    wv.engine_config(f, t["width_ns"]))
        status = np.where(rep.converged, wv.WvStatus.CONVERGED,
                          np.where(rep.fail_reason == wv.FAIL_ROUNDS, wv.WvStatus.FAIL_ROUNDS,
                                   wv.WvStatus.FAIL_TOP_PULSES))
        out[idx] = wv.result_word(rep.final_g.astype(np.int64), rep.pulses, status)
        k.counters["program"] += int(rep.pulses.sum())
        k.counters["read"] += rep.reads
        k.programmed = True
        # CELL_RESULT: the engine's last read, which is of its last cell.
        k.cell_result, k.cell_valid = int(rep.final_g[-1]), 1
        return out

    def write_verify_rows(self, core: int, row: int, words) -> np.ndarray:
        """Equivalent of the operations {write WV_CELLS, CELL_ADDR, WV_LIMITS.rows, CTRL.wv_start,
        read WV_CELLS} over consecutive blocks of ``wv_rows`` rows from ``row`` (``words`` row-major,
        any whole number of rows): returns the result words of every row."""
        c = self.config
        words = np.asarray(words, np.uint32).reshape(-1)
        n_rows = words.size // c.cols
        blocks = [(r, min(c.wv_rows, row + n_rows - r)) for r in range(row, row + n_rows, c.wv_rows)]
        ok = core < c.n_cores and bool(self._mask_bits("CORE_ENABLE")[core]) and words.size == n_rows * c.cols
        for r, n in blocks:
            ok = ok and self._wv_settings(r, n)[2]
        if not ok or not blocks:
            self._status["config_error"] = 1
            raise_refused("write-verify operation refused: is the core enabled, are the rows inside the "
                          "array and the WV registers a valid procedure?")
        k = self.cores[core]
        f, t, _ = self._wv_settings(row, n_rows)
        out = self._wv_run(k, row, words, f, t)
        last_row, last_n = blocks[-1]
        last = out[(last_row - row) * c.cols:]
        k.wv_words[:last.size] = last
        self._regs[R.REGISTERS["CELL_ADDR"].address()] = R.pack("CELL_ADDR", **{**self._reg("CELL_ADDR"),
                                                                              "core": core, "row": last_row})
        self._regs[R.REGISTERS["WV_LIMITS"].address()] = R.pack("WV_LIMITS", **{**self._reg("WV_LIMITS"),
                                                                              "rows": last_n})
        self._status.update(cell_busy=0, cell_done=1, config_error=0)
        self.save_state([core])
        return out

    def cell_pulses(self, core, rows, cols, polarity, amplitude_mV, width_ns, gate_mV) -> None:
        """Equivalent of one {CELL_ADDR, CELL_PULSE, CELL_TIMING, CTRL.cell_program} per cell."""
        rows, cols = np.asarray(rows), np.asarray(cols)
        if rows.size == 0:
            return
        if not self._mask_bits("CORE_ENABLE")[core]:
            self._status["config_error"] = 1
            raise_refused("cell command to a disabled core")
        k = self.cores[core]
        amp = np.round(np.asarray(amplitude_mV, float)).astype(np.int64) & 0xFFF
        gate = np.round(np.asarray(gate_mV, float)).astype(np.int64) & 0x1FFF
        width = np.asarray(width_ns).astype(np.int64) & 0xFFFF
        k.model.program_pulse(rows, cols, np.asarray(polarity), amp, width, gate)
        k.programmed = True
        k.counters["program"] += int(rows.size)
        self._cell_regs(core, rows[-1], cols[-1], np.asarray(polarity).reshape(-1)[-1],
                        np.asarray(amp).reshape(-1)[-1], np.asarray(width).reshape(-1)[-1],
                        np.asarray(gate).reshape(-1)[-1])
        self._status.update(cell_busy=0, cell_done=1, config_error=0)
        self.save_state([core])

    def cell_reads(self, core, rows, cols, read_mV) -> np.ndarray:
        """Equivalent of one {CELL_ADDR, CTRL.cell_read, read CELL_RESULT} per cell: codes (10 nS)."""
        rows, cols = np.asarray(rows), np.asarray(cols)
        if not self._mask_bits("CORE_ENABLE")[core]:
            self._status["config_error"] = 1
            raise_refused("cell command to a disabled core")
        k = self.cores[core]
        codes = np.asarray(k.model.read_cell(rows, cols, read_mV))
        k.counters["read"] += int(rows.size)
        if rows.size:
            self._cell_regs(core, rows[-1], cols[-1], read_mV=read_mV)
            k.cell_result, k.cell_valid = int(codes.reshape(-1)[-1]), 1
        self._status.update(cell_busy=0, cell_done=1, config_error=0)
        return codes

    # -- protocol ---------------------------------------------------------------------------------
    def handle_bytes(self, data: bytes) -> bytes:
        """Chip side of the byte protocol: requests in, replies out (docs/protocol.md)."""
        if not hasattr(self, "_engine"):
            self._engine = ChipProtocolEngine(self)
        return self._engine.feed(data)


def _close_at_exit(ref) -> None:
    """Clean shutdown of a chip with a state file at interpreter exit (a chip already collected,
    or a state directory gone, writes nothing)."""
    chip = ref()
    if chip is not None:
        try:
            chip.close()
        except OSError:
            pass


class ChipProtocolEngine(ProtocolServer):
    """The protocol engine of the fast model: the Python chip end over FastChip's bus."""

    def __init__(self, chip: FastChip, max_words: int = DEFAULT_MAX_WORDS):
        super().__init__(chip.read, chip.write, AddressMap.from_config(chip.config), max_words)
        self.chip = chip


class _EngineCells:
    """The engine's view of a core's cells: pulses, and reads as 10 nS codes (as CELL_RESULT)."""

    def __init__(self, model: AnalogCore, read_mV: int):
        self.model, self.read_mV = model, read_mV

    def read_cells(self, rows, cols) -> np.ndarray:
        return np.asarray(self.model.read_cell(rows, cols, self.read_mV), np.float64)

    def pulse_cells(self, rows, cols, polarity, amplitude_mV, width_ns, gate_mV) -> None:
        self.model.program_pulse(rows, cols, polarity, amplitude_mV, width_ns, gate_mV)

