import json

import numpy as np
import pytest

from conftest import run_cli
from drcn.benchmarks import cli


def test_quality_table_and_json(image_folder, tmp_path, capsys):
    out = tmp_path / "res.json"
    assert cli.main(["quality", str(image_folder), "--scale", "2", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "imgs" in table and "PSNR" in table
    data = json.loads(out.read_text())
    assert set(data) == {"imgs"}
    assert data["imgs"]["images"] == 3
    assert 15 < data["imgs"]["psnr"] < 60 and 0 < data["imgs"]["ssim"] <= 1


def test_json_to_stdout_is_pure_json(image_folder):
    result = run_cli("drcn.benchmarks.cli", "quality", str(image_folder), "--scale", "3", "--json", "-")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imgs"]["images"] == 3


def test_default_dataset_is_the_bundled_samples(capsys):
    assert cli.main(["quality", "--scale", "4"]) == 0
    assert "skimage-samples" in capsys.readouterr().out


def test_torch_method_with_weights(image_folder, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from drcn import ModelConfig
    from drcn.model import DRCN
    from drcn.weights import save_weights

    torch.manual_seed(0)
    model = DRCN(ModelConfig(filters=4, recursions=2))
    with torch.no_grad():  # zero residual: the model reproduces its (bicubic) input exactly
        model.reconstruct[-1].weight.zero_()
        model.reconstruct[-1].bias.zero_()
        model.ensemble.copy_(torch.tensor([0.5, 0.5]))
    weights = tmp_path / "w.safetensors"
    save_weights(weights, model)
    res = {}
    for method in ("bicubic", "torch"):
        path = tmp_path / f"{method}.json"
        assert cli.main(["quality", str(image_folder), "--method", method, "--weights", str(weights),
                         "--json", str(path)]) == 0
        res[method] = json.loads(path.read_text())["imgs"]
    assert res["torch"]["psnr"] == pytest.approx(res["bicubic"]["psnr"], abs=1e-9)


@pytest.mark.parametrize("args, message", [
    (["/no/such/folder"], "no such folder"),
    (["{empty}"], "no images"),
    (["{bad}"], "cannot decode"),
    (["{good}", "--scale", "1"], "scale must be greater than 1"),
    (["{good}", "--scale", "0.5"], "scale must be greater than 1"),
    (["{good}", "--scale", "two"], "not a number"),
    (["{good}", "--method", "nope"], "unknown method"),
    (["{good}", "--method", "torch", "--weights", "/no/w.safetensors"], "no such weights file"),
])
def test_bad_input_one_line_error(args, message, tmp_path, image_folder):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG not really")
    args = [a.format(empty=tmp_path / "empty", bad=tmp_path / "bad", good=image_folder) for a in args]
    result = run_cli("drcn.benchmarks.cli", "quality", *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("drcn-bench") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_predictions_are_rounded_like_saved_images():
    from drcn import evaluation as quality

    class Offset:
        name = "offset"

        def upscale_y(self, y):
            return y + 0.4 / 255  # less than half a grey level: rounds back to the input

    class Bicubic:
        name = "b"

        def upscale_y(self, y):
            return y

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert quality.score_image(Offset(), hr, 2) == quality.score_image(Bicubic(), hr, 2)
