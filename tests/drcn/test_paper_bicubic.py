"""The paper's Bicubic column, reproduced through the user command: proof that the conventions are right."""

import json

import pytest

from conftest import run_cli

PAPER = {  # Y-PSNR, SSIM (Kim et al. 2016, Table 3; SSIM from the VDSR/DRCN tables)
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
}


@pytest.mark.datasets
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_column(datasets, scale):
    result = run_cli("drcn.benchmarks.cli", "quality", str(datasets / "Set5"), str(datasets / "Set14"),
                     "--scale", str(scale), "--method", "bicubic", "--json", "-")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    for name in ("Set5", "Set14"):
        psnr, ssim = PAPER[(name, scale)]
        assert got[name]["images"] == {"Set5": 5, "Set14": 14}[name]
        assert got[name]["psnr"] == pytest.approx(psnr, abs=0.02), name
        assert got[name]["ssim"] == pytest.approx(ssim, abs=0.002), name
