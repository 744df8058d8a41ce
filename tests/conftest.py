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


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by selenium through Debian's chromedriver (1280x900); skipped with a
    reason where either is missing."""
    import shutil
    import tempfile

    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("no browser: install Debian's chromium and chromium-driver (.ci/run does, as root)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="drcn-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
