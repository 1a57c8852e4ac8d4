"""Non-volatile state of the fast chip model (docs/architecture.md, contract 11).

A real RRAM chip keeps its conductances without power. :class:`StateFile` keeps the part of a
:class:`~neurram.sim.fastmodel.FastChip` that survives a power cycle in one file, so a chip
opened on the file (``--chip model:state=FILE``, ``neurram serve --state FILE``) resumes with the
cells programmed and relaxed for the wall-clock time elapsed since the file was written.

What is kept, per core that has been programmed or read:

* the device state of its array (``models/device.py`` ``RRAMArray``): conductance ``_g``,
  programmed value ``_g_prog``, relaxation deviation ``_dev``, time since programming ``_t``,
  per-cell pulse and read counters and the state of the array's random generator (relaxation
  draws), so the array continues bit-exactly;
* the analog core's time since programming (first-use delay) and MVM index (the position in the
  counter-based read-noise stream), and whether an ``age=`` relaxation is still pending;
* the non-volatile configuration of the core: ``CORE_BIAS`` and ``CORE_NEURON`` (per-core
  calibration trims that a chip keeps with its die) and the ``POLARITY`` buffer (which lines hold
  G- weights: the programmed weights mean nothing without it).

Everything else is volatile and comes back at its power-on value, as on a chip: the other
registers, the INPUT/OUTPUT/WV_CELLS buffers, neuron mask and BL/SL registers, event counters.
The die's static properties (device-to-device spread, stuck cells, neuron and driver mismatch)
follow from the seed and are drawn again; the file records the seed, geometry and analog
parameters it was written for and refuses a chip opened with others.

File format (version :data:`FORMAT`): ``MAGIC`` (8 bytes), format number (uint32 little endian),
SHA-256 of the payload (32 bytes), payload (an ``.npz`` archive). Written by atomic replace: a
temporary file in the same directory, flushed and fsynced, ``os.replace``, then the directory
fsynced; a reader sees the old or the new file, never a torn one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import uuid

import numpy as np

__all__ = ["StateFile", "StateError", "FORMAT", "MAGIC", "read_payload"]

MAGIC = b"NRMSTATE"
FORMAT = 1
_HEADER = len(MAGIC) + 4 + 32
_DEVICE_ARRAYS = ("_g", "_g_prog", "_dev", "_t", "_pulse_count", "_read_count")
_NV_REGISTERS = ("CORE_BIAS", "CORE_NEURON")


class StateError(ValueError):
    """A state file that cannot be used (one line naming the file and the fix)."""


def _fingerprint(chip) -> dict:
    params = hashlib.sha256(repr(chip.params).encode()).hexdigest()[:16]
    return {"config": repr(chip.config), "seed": int(chip.seed), "params": params}


def read_payload(path: str) -> bytes:
    """The checked payload of a state file (StateError when it is not one, of another format
    version or corrupt)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise StateError(f"state file {path}: cannot read it ({e.strerror})") from None
    if len(data) < _HEADER or data[:len(MAGIC)] != MAGIC:
        raise StateError(f"state file {path}: not a neurram chip state file (corrupt or another file); "
                         "delete it or give another path")
    version = int.from_bytes(data[len(MAGIC):len(MAGIC) + 4], "little")
    if version != FORMAT:
        raise StateError(f"state file {path}: format version {version}, this neurram reads version {FORMAT}; "
                         "delete the file (the chip starts unprogrammed) or open it with the neurram that wrote it")
    digest, payload = data[len(MAGIC) + 4:_HEADER], data[_HEADER:]
    if hashlib.sha256(payload).digest() != digest:
        raise StateError(f"state file {path}: corrupt (checksum mismatch); delete it or restore a copy")
    return payload


class StateFile:
    """The state file of one chip: :meth:`load` into it, :meth:`save` from it.

    ``path`` is the manifest: the chip's fingerprint, its non-volatile registers and, per kept
    core, the name, SHA-256 and write time of the core's device file (``path.core<i>.<token>``,
    same header). A save writes new files only for the cores that changed, then replaces the
    manifest atomically, then deletes the files it no longer names: whatever moment a writer dies
    at, the manifest names complete files (the next open removes the orphans)."""

    def __init__(self, path: str, clock=time.time):
        self.path = os.path.abspath(os.fspath(path))
        self.clock = clock
        self.owner = os.getpid()         # forked copies of the chip (worker processes) never write
        self.saves = 0
        self.save_seconds = 0.0
        self.bytes_written = 0
        self._cores = {}                 # core -> {"file", "sha256", "written_s"} of the manifest on disk
        #: Seconds each loaded core relaxed on opening (since its state was written).
        self.elapsed = {}
        #: Called with the manifest payload's SHA-256 (hex) before it replaces the file (tests
        #: record snapshots with it).
        self.before_write = None

    @property
    def total_bytes(self) -> int:
        """Size of the state on disk: the manifest and the core files it names."""
        files = [self.path] + [os.path.join(os.path.dirname(self.path), c["file"]) for c in self._cores.values()]
        return sum(os.path.getsize(f) for f in files if os.path.exists(f))

    # -- writing --------------------------------------------------------------------------------
    def _core_payload(self, k) -> bytes:
        dev, model = k.model.device, k.model
        arrays = {name: getattr(dev, name) for name in _DEVICE_ARRAYS}
        arrays["rng"] = np.frombuffer(json.dumps(dev.rng.bit_generator.state).encode(), np.uint8)
        arrays["core"] = np.array([model._since_program_s, float(model.mvm_count), float(k.programmed)])
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def _manifest_payload(self, chip, kept, now: float) -> bytes:
        arrays = {"meta": np.frombuffer(json.dumps({
            **_fingerprint(chip), "written_s": now,
            "cores": {str(i): self._cores[i] for i in kept}}).encode(), np.uint8)}
        for i in kept:
            k = chip.cores[i]
            arrays[f"c{i}_regs"] = np.array([chip._regs[_reg_address(name, i)] for name in _NV_REGISTERS], np.int64)
            arrays[f"c{i}_polarity"] = k.polarity
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def _write(self, path: str, payload: bytes, digest: bytes) -> None:
        tmp = f"{self.path}.tmp.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(MAGIC + FORMAT.to_bytes(4, "little") + digest)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.bytes_written += _HEADER + len(payload)

    def save(self, chip, cores=None) -> bool:
        """Write the chip's state by atomic replace: new device files for ``cores`` (None: every
        kept core) and the manifest; False (nothing written) in a forked copy of the chip."""
        if os.getpid() != self.owner:
            return False
        t0 = time.perf_counter()
        directory = os.path.dirname(self.path)
        kept = [i for i, _ in _kept_cores(chip)]
        dirty = [i for i in kept if cores is None or i in cores or i not in self._cores]
        old = dict(self._cores)
        now = float(self.clock())
        for i in dirty:
            payload = self._core_payload(chip.cores[i])
            digest = hashlib.sha256(payload)
            name = f"{os.path.basename(self.path)}.core{i}.{uuid.uuid4().hex[:12]}"
            self._write(os.path.join(directory, name), payload, digest.digest())
            self._cores[i] = {"file": name, "sha256": digest.hexdigest(), "written_s": now}
        payload = self._manifest_payload(chip, kept, now)
        digest = hashlib.sha256(payload)
        if self.before_write is not None:
            self.before_write(digest.hexdigest())
        self._write(self.path, payload, digest.digest())
        _fsync_dir(directory)
        for i, entry in old.items():            # files the manifest on disk no longer names
            if self._cores.get(i, {}).get("file") != entry["file"]:
                _remove(os.path.join(directory, entry["file"]))
        self.saves += 1
        self.save_seconds += time.perf_counter() - t0
        return True

    # -- reading --------------------------------------------------------------------------------
    def exists(self) -> bool:
        return os.path.exists(self.path)

    def load(self, chip) -> float:
        """Put the file's state into ``chip`` (freshly reset) and relax each core's cells for the
        seconds elapsed since its state was written; returns the seconds since the manifest was
        written (0 when there is no file)."""
        if not self.exists():
            self._remove_orphans()
            return 0.0
        payload = read_payload(self.path)
        try:
            z = np.load(io.BytesIO(payload), allow_pickle=False)
            meta = json.loads(bytes(z["meta"]).decode())
        except (ValueError, KeyError, OSError) as e:
            raise StateError(f"state file {self.path}: unreadable payload ({e}); delete it or restore a copy") from None
        mine = _fingerprint(chip)
        for key, what in (("config", "geometry"), ("seed", "seed"), ("params", "analog parameters (noise options)")):
            if meta.get(key) != mine[key]:
                raise StateError(f"state file {self.path} was written by a chip with another {what} "
                                 f"({meta.get(key)} here {mine[key]}): open it with the target options it was "
                                 "written with, or give another state file")
        now = float(self.clock())
        directory = os.path.dirname(self.path)
        for key, entry in meta["cores"].items():
            i = int(key)
            core_path = os.path.join(directory, entry["file"])
            core_payload = read_payload(core_path)
            if hashlib.sha256(core_payload).hexdigest() != entry["sha256"]:
                raise StateError(f"state file {core_path}: not the file {self.path} names (checksum); "
                                 "restore both from one copy or delete them")
            c = np.load(io.BytesIO(core_payload), allow_pickle=False)
            k = chip.cores[i]
            dev, model = k.model.device, k.model
            for name in _DEVICE_ARRAYS:
                getattr(dev, name)[...] = c[name]
            dev.rng.bit_generator.state = json.loads(bytes(c["rng"]).decode())
            since, mvms, programmed = c["core"]
            model._since_program_s, model.mvm_count, k.programmed = float(since), int(mvms), bool(programmed)
            for name, value in zip(_NV_REGISTERS, z[f"c{i}_regs"]):
                chip._regs[_reg_address(name, i)] = int(value)
            k.polarity[:] = z[f"c{i}_polarity"]
            model.crossbar.invalidate()
            elapsed = max(0.0, now - float(entry["written_s"]))
            if elapsed > 0:
                model.relax(elapsed)
            self.elapsed[i] = elapsed
            self._cores[i] = entry
        self._remove_orphans()
        return max(0.0, now - float(meta["written_s"]))

    def _remove_orphans(self) -> None:
        """Temporaries and core files that the manifest does not name (left by a killed writer)."""
        directory, name = os.path.split(self.path)
        try:
            entries = os.listdir(directory)
        except OSError:
            return
        named = {c["file"] for c in self._cores.values()}
        for entry in entries:
            orphan = entry.startswith(name + ".tmp.") or re.fullmatch(re.escape(name) + r"\.core\d+\.[0-9a-f]{12}", entry)
            if orphan and entry not in named:
                _remove(os.path.join(directory, entry))


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _kept_cores(chip):
    """The built cores whose arrays left their power-on state (programmed or read), or that hold
    non-volatile configuration."""
    out = []
    for i in range(len(chip.cores)):
        k = chip.cores._cores[i]
        if k is None:
            continue
        dev = k.model.device
        if (dev._pulse_count.any() or dev._read_count.any() or k.polarity.any() or k.model.mvm_count
                or any(chip._regs[_reg_address(n, i)] != _reset(n) for n in _NV_REGISTERS)):
            out.append((i, k))
    return out


def _reg_address(name: str, i: int) -> int:
    from neurram.spec import regmap as R
    return R.REGISTERS[name].address(i)


def _reset(name: str) -> int:
    from neurram.spec import regmap as R
    return R.REGISTERS[name].reset
