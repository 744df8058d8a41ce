import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from drcn import DrcnError, ModelConfig  # noqa: E402
from drcn.model import DRCN  # noqa: E402
from drcn.weights import load_model, read_config, save_weights  # noqa: E402


def test_round_trip_keeps_config_and_tensors(tmp_path):
    model = DRCN(ModelConfig(filters=8, recursions=2, scales=(2,)))
    with torch.no_grad():
        model.ensemble.copy_(torch.tensor([0.3, 0.7]))
    path = tmp_path / "m.safetensors"
    save_weights(path, model, {"note": "test"})
    loaded = load_model(path)
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    # The config is readable without torch.
    code = f"import sys; from drcn.weights import read_config; print(read_config({str(path)!r}).filters); " \
           "assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "8"


def test_bad_weights_files(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(DrcnError, match="junk.safetensors"):
        read_config(junk)
    with pytest.raises(DrcnError, match="no such weights file"):
        load_model(tmp_path / "missing.safetensors")
