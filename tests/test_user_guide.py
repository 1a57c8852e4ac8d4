"""docs/user-guide.md runs as written: its Python blocks, in order, in one namespace, and what
they compute is what the text says (the chip close to software, a working CNN, a low-level MVM
that tracks the ideal product)."""

import importlib.util
import re
from pathlib import Path

import numpy as np

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "user-guide.md"


def test_the_user_guide_runs_and_its_results_hold(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 4
    torch_blocks = re.findall(r"```python torch\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert len(torch_blocks) == 1
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for block in blocks + (torch_blocks if importlib.util.find_spec("torch") else []):
        exec(compile(block, str(GUIDE), "exec"), ns)
    # 1. the MLP: a real classifier in software, and the chip within a few points of it
    assert ns["software"] > 0.6
    assert abs(ns["chip_accuracy"] - ns["software"]) <= 0.06
    # 2. the CNN: the paper's network classifies on a 16-core chip
    assert ns["result"].accuracy(ns["y_test"][:50]) >= 0.9
    # 3. the low-level MVM follows the ideal product
    assert ns["r"] > 0.95
    assert ns["saturated"].mean() < 0.2
    if "torch_logits" in ns:        # 4. the imported PyTorch module runs on the chip like its software model
        assert np.corrcoef(ns["torch_logits"].ravel(), ns["nn"].forward(ns["imported"], ns["x_test"][:50]).ravel())[0, 1] > 0.9
    out = capsys.readouterr().out
    assert "software:" in out and "chip:" in out and "correlation" in out
