"""The shipped model beats SRCNN on every cell of Set5 and Set14, through the user command (issue 3's floors)."""

import json

import pytest

from conftest import run_cli

pytest.importorskip("torch")
pytest.importorskip("safetensors")

FLOORS = {  # Y-PSNR the shipped model must reach; SRCNN (Dong et al.) is 36.66/32.75/30.48 and 32.42/29.28/27.49
    ("Set5", 2): 36.9, ("Set5", 3): 32.9, ("Set5", 4): 30.6,
    ("Set14", 2): 32.5, ("Set14", 3): 29.4, ("Set14", 4): 27.6,
}


@pytest.mark.datasets
def test_shipped_model_meets_the_floors(datasets):
    result = run_cli("drcn.benchmarks.cli", "quality", str(datasets / "Set5"), str(datasets / "Set14"),
                     "--scale", "2,3,4", "--method", "torch", "--json", "-")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    for (name, scale), floor in FLOORS.items():
        assert got["torch"][f"x{scale}"][name]["psnr"] >= floor, (name, scale, got["torch"][f"x{scale}"][name])
