"""drcn-average: element-wise mean of snapshots, config checks, one-line errors."""

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from drcn.config import ModelConfig  # noqa: E402
from drcn.model import DRCN  # noqa: E402
from drcn.train import average  # noqa: E402
from drcn.weights import load_model, read_metadata, save_weights  # noqa: E402


def tiny(seed, recursions=2):
    torch.manual_seed(seed)
    model = DRCN(ModelConfig(filters=4, recursions=recursions))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model


def test_average_of_a_checkpoint_and_a_weights_file(tmp_path):
    a, b = tiny(0), tiny(1)
    save_weights(tmp_path / "a.safetensors", a)
    torch.save({"format": 1, "model_config": b.config.to_dict(), "model": b.state_dict()}, tmp_path / "b.pt")
    out = tmp_path / "mean.safetensors"
    assert average.main([str(tmp_path / "a.safetensors"), str(tmp_path / "b.pt"), "--out", str(out)]) == 0
    mean = load_model(out).state_dict()
    for key, value in a.state_dict().items():
        torch.testing.assert_close(mean[key], (value + b.state_dict()[key]) / 2)
    assert read_metadata(out)["drcn.averaged_from"] == "a.safetensors,b.pt"


def run(*args):
    return subprocess.run([sys.executable, "-m", "drcn.train.average", *args], capture_output=True, text=True,
                          timeout=300)


def test_bad_input(tmp_path):
    save_weights(tmp_path / "d2.safetensors", tiny(0, 2))
    save_weights(tmp_path / "d3.safetensors", tiny(0, 3))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    out = str(tmp_path / "o.safetensors")
    cases = [((str(tmp_path / "d2.safetensors"), str(tmp_path / "d3.safetensors"), "--out", out), "differs from"),
             ((str(tmp_path / "nope.pt"), "--out", out), "no such file"),
             ((str(tmp_path / "junk.pt"), "--out", out), "junk.pt: not a drcn checkpoint"),
             ((str(tmp_path / "d2.safetensors"), "--out", str(tmp_path / "o.bin")), "written as .safetensors")]
    for args, message in cases:
        result = run(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "o.safetensors").exists()  # nothing half-written


def test_training_snapshots_average(image_folder, tmp_path):
    from drcn.train import cli

    assert cli.main(["--data", str(image_folder), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"),
                     "--filters", "4", "--recursions", "2", "--batch", "2", "--patch", "17", "--steps", "4",
                     "--optimizer", "adam", "--lr", "1e-3", "--no-progress", "--snapshot-every", "2"]) == 0
    snaps = sorted((tmp_path / "run" / "snapshots").glob("*.safetensors"))
    assert [p.name for p in snaps] == ["step-0000002.safetensors", "step-0000004.safetensors"]
    final = load_model(tmp_path / "run" / "best.safetensors").state_dict()  # no --val: the last weights
    torch.testing.assert_close(load_model(snaps[-1]).state_dict(), final, rtol=0, atol=0)
    mean = average.average_weights(snaps).state_dict()
    first = load_model(snaps[0]).state_dict()
    for key in final:
        torch.testing.assert_close(mean[key], (first[key] + final[key]) / 2)
