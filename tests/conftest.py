import os
import sys
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def datasets_root() -> Path | None:
    """$DRCN_DATASETS, else ../shared/datasets beside the checkout; None when neither exists."""
    env = os.environ.get("DRCN_DATASETS")
    for candidate in ([Path(env)] if env else []) + [REPO.parent / "shared" / "datasets"]:
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh $DRCN_CACHE (frame graphs, engines, OpenVINO blobs) for one test."""
    monkeypatch.setenv("DRCN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def datasets() -> Path:
    root = datasets_root()
    if root is None:
        pytest.skip("datasets folder not found: set DRCN_DATASETS or provide ../shared/datasets")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """A folder of three small PNGs (RGB, grayscale, odd size), made from random smooth noise."""
    import cv2

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, shape in (("a.png", (48, 64, 3)), ("b.png", (50, 41)), ("c.png", (37, 45, 3))):
        img = cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(folder / name), img)
    return folder


def run_cli(module: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=600)


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory):
    """(weights, onnx) of a tiny trained-looking DRCN (F=8, D=2, halo 6), exported by drcn-export."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from drcn import ModelConfig
    from drcn.export.exporter import export_model
    from drcn.model import DRCN
    from drcn.weights import save_weights

    torch.manual_seed(3)
    model = DRCN(ModelConfig(filters=8, recursions=2, scales=(2, 3, 4)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.ensemble.copy_(torch.tensor([0.4, 0.6]))
    folder = tmp_path_factory.mktemp("tiny")
    weights, onnx_path = folder / "tiny.safetensors", folder / "tiny.onnx"
    save_weights(weights, model)
    export_model(onnx_path, weights=str(weights))
    return weights, onnx_path
