"""The PyTorch backend on CUDA through drcn-run (skipped without a GPU)."""

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]


def test_drcn_run_torch_cuda_matches_cpu(tiny_model_files, tmp_path, capsys):
    import numpy as np

    from drcn.images import read_image, write_image
    from drcn.runtime import run_cli

    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    weights = str(tiny_model_files[0])
    assert run_cli.main([str(src), "-o", str(tmp_path / "gpu"), "--weights", weights, "--device", "cuda"]) == 0
    assert "PyTorch" in capsys.readouterr().out
    assert run_cli.main([str(src), "-o", str(tmp_path / "cpu"), "--weights", weights, "--device", "cpu"]) == 0
    a, b = read_image(tmp_path / "gpu" / "a.png"), read_image(tmp_path / "cpu" / "a.png")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
