"""drcn-bench latency / sweep / multi-method quality on a tiny model (numbers are not asserted: speed is
measured, never tested; the structure and the arithmetic of the reports are)."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from conftest import run_cli  # noqa: E402
from drcn.benchmarks import cli  # noqa: E402


def test_latency_records(tiny_model_files, tmp_path, cache, image_folder):
    out = tmp_path / "lat.json"
    assert cli.main(["latency", "--method", "onnxruntime,torch", "--weights", str(tiny_model_files[0]),
                     "--tile", "16,24", "--batch", "2", "--repeat", "2", "--warmup", "1", "--frames", "40x30",
                     "--frame-repeat", "1", "--overhead", "48x40", "--pipeline", "2", "--quality", str(image_folder),
                     "--json", str(out), "--md", str(tmp_path / "lat.md"), "--plot", str(tmp_path / "p.png")]) == 0
    records = json.loads(out.read_text())
    assert [(r["backend"], r["tile"]) for r in records] == [("onnxruntime", 16), ("onnxruntime", 24),
                                                            ("torch", 16), ("torch", 24)]
    for r in records:
        for key in ("backend", "precision", "tile", "batch", "median_ms", "p90_ms", "mpix_per_s"):
            assert key in r
        assert r["p90_ms"] >= r["median_ms"] > 0
        assert r["mpix_per_s"] == pytest.approx(r["batch"] * r["tile"] ** 2 / (r["call_median_ms"] / 1e3) / 1e6)
        assert r["per_frame"][0]["frame"] == "40x30"
        overhead = r["tiling_overhead"]
        # 48x40 with tile 16 and halo 6: 3x3 windows; equal tiles of 14 rows and 16 columns: windows of 26x28
        if r["tile"] == 16:
            assert overhead["theoretical_ratio"] == pytest.approx(9 * 26 * 28 / (48 * 40))
            assert overhead["fixed_theoretical_ratio"] == pytest.approx(9 * 28 * 28 / (48 * 40))
            assert overhead["equal_tiles_speedup"] > 0
        assert 0 < r["pipeline"]["efficiency"] and r["pipeline"]["frames"] == 2
        assert r["env"]["packages"]["numpy"] and r["psnr"] > 10
    assert "vs torch fp32" in (tmp_path / "lat.md").read_text()
    assert (tmp_path / "p.png").stat().st_size > 1000
    # The exported variant was cached under DRCN_CACHE.
    assert list((cache / "bench").glob("*_fp32.onnx"))


def test_sweep(tiny_model_files, tmp_path, cache, image_folder):
    out = tmp_path / "sweep.json"
    assert cli.main(["sweep", str(image_folder), "--weights", str(tiny_model_files[0]), "--tile", "16",
                     "--batch", "2", "--repeat", "1", "--warmup", "0", "--calib", str(image_folder),
                     "--json", str(out), "--plot", str(tmp_path / "r.png")]) == 0
    records = json.loads(out.read_text())
    assert [r["depth"] for r in records] == [1, 2] and all(r["psnr"] > 10 for r in records)
    assert (tmp_path / "r.png").is_file()


def test_quality_several_methods_and_scales(tiny_model_files, tmp_path, image_folder, capsys):
    onnx = tiny_model_files[1]
    out = tmp_path / "q.json"
    assert cli.main(["quality", str(image_folder), "--method", "bicubic,onnxruntime", "--scale", "2,3",
                     "--onnx", str(onnx), "--weights", str(tiny_model_files[0]), "--tile", "16",
                     "--json", str(out), "--md", str(tmp_path / "q.md")]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"bicubic", "onnxruntime", "torch"}  # the reference joins automatically
    assert set(data["onnxruntime"]) == {"x2", "x3"}
    ort, ref = data["onnxruntime"]["x2"]["imgs"]["psnr"], data["torch"]["x2"]["imgs"]["psnr"]
    assert abs(ort - ref) < 0.01
    assert "Δ vs torch" in (tmp_path / "q.md").read_text()
    # Issue 33: beside the PSNR change, the per-pixel deviation from the fp32 reference of the same model.
    pixels = data["onnxruntime"]["x2"]["imgs"]["pixels"]
    assert pixels["max"] <= 1 and pixels["over4_pct"] == 0 and pixels["values"] > 0
    assert "pixels" not in data["bicubic"]["x2"]["imgs"] and "pixels" not in data["torch"]["x2"]["imgs"]
    assert "Per-pixel deviation of the 8-bit Y output from torch" in (tmp_path / "q.md").read_text()


def test_the_ensemble_is_one_more_axis_of_both_tables(tiny_model_files, tmp_path, image_folder, capsys, cache):
    """quality --ensemble: one column per size, each with its seconds; latency --ensemble: one record per size,
    with PSNR and a point on the plot (the cost and the gain side by side)."""
    quality, latency = tmp_path / "q.json", tmp_path / "l.json"
    assert cli.main(["quality", str(image_folder), "--method", "onnxruntime", "--onnx", str(tiny_model_files[1]),
                     "--weights", str(tiny_model_files[0]), "--tile", "16", "--ensemble", "1,8",
                     "--json", str(quality)]) == 0
    data = json.loads(quality.read_text())
    assert set(data) == {"onnxruntime", "onnxruntime ensemble 8", "torch"}
    one, eight = data["onnxruntime"]["x2"]["imgs"], data["onnxruntime ensemble 8"]["x2"]["imgs"]
    assert one["psnr"] != eight["psnr"] and eight["seconds"] > 0
    assert eight["pixels"]["max"] > one["pixels"]["max"]      # the ensemble is a different output, and says so
    printed = capsys.readouterr().out
    assert " s " in printed.split("Per-pixel")[0].splitlines()[-1] + " " and "ensemble 8" in printed.split("Per-pixel")[1]
    assert cli.main(["latency", "--method", "onnxruntime", "--weights", str(tiny_model_files[0]), "--tile", "16",
                     "--batch", "2", "--repeat", "1", "--warmup", "0", "--ensemble", "1,4",
                     "--quality", str(image_folder), "--json", str(latency), "--plot", str(tmp_path / "p.png")]) == 0
    records = json.loads(latency.read_text())
    assert [r["ensemble"] for r in records] == [1, 4] and all(r["psnr"] for r in records)
    assert records[0]["psnr"] != records[1]["psnr"] and (tmp_path / "p.png").stat().st_size > 1000


def test_latency_quick_default_and_full(tiny_model_files, tmp_path, cache):
    """The default is the quick per-tile report; --full adds frames, overhead and the pipeline check."""
    quick, full = tmp_path / "quick.json", tmp_path / "full.json"
    common = ["latency", "--method", "onnxruntime", "--weights", str(tiny_model_files[0]), "--tile", "16",
              "--batch", "2", "--repeat", "1", "--warmup", "0", "--frame-repeat", "1"]
    assert cli.main([*common, "--json", str(quick)]) == 0
    (record,) = json.loads(quick.read_text())
    assert record["per_frame"] == [] and "tiling_overhead" not in record and "pipeline" not in record
    assert record["repeat"] == 1
    assert cli.main([*common, "--full", "--frames", "40x30", "--overhead", "48x40", "--pipeline", "2",
                     "--json", str(full)]) == 0
    (record,) = json.loads(full.read_text())
    assert [f["frame"] for f in record["per_frame"]] == ["40x30"]
    assert record["tiling_overhead"]["frame"] == "48x40" and record["pipeline"]["frames"] == 2


@pytest.mark.parametrize("option", [["--tile", "0"], ["--batch", "0"], ["--repeat", "0"], ["--frames", "12"],
                                    ["--method", "magic"], ["--ensemble", "1,3"]])
def test_latency_rejects_bad_options_in_one_line(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["latency", *option])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(("drcn-bench: error:", "drcn-bench latency: error:"))


@pytest.mark.slow
def test_latency_pipeline_on_ray(tiny_model_files, tmp_path, cache):
    pytest.importorskip("ray")
    out = tmp_path / "ray.json"
    assert cli.main(["latency", "--method", "onnxruntime", "--weights", str(tiny_model_files[0]), "--tile", "16",
                     "--batch", "2", "--repeat", "1", "--warmup", "0", "--pipeline", "4", "--ray",
                     "--json", str(out), "--md", str(tmp_path / "ray.md")]) == 0
    import json as json_

    (record,) = json_.loads(out.read_text())
    ray = record["pipeline"]["ray"]
    assert set(ray) == {"1", "2"} and all(v["fps"] > 0 and v["startup_s"] >= 0 for v in ray.values())
    assert "ray x1" in (tmp_path / "ray.md").read_text()


def test_host_work_per_frame_is_measured_for_both_paths(tmp_path):
    import json

    from conftest import run_cli

    out = tmp_path / "host.json"
    result = run_cli("drcn.benchmarks.cli", "latency", "--host", "320x180", "--repeat", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())
    assert [r["path"] for r in records] == ["host", "device"]
    for r in records:
        assert r["frame"] == "320x180" and r["host_ms"] > 0 and r["io_ms"] > 0
    assert "vs host path" in result.stdout
    bad = run_cli("drcn.benchmarks.cli", "latency", "--host", "321x180")
    assert bad.returncode == 2 and "even sides" in bad.stderr


def test_compare_writes_labelled_panels(tmp_path, tiny_model_files):
    from conftest import run_cli
    from drcn import matlab
    from drcn.images import read_image, write_image
    from drcn.samples import load_sample

    hr = matlab.modcrop(load_sample("chelsea"), 2)[:120, :160]
    write_image(tmp_path / "hr.png", hr)
    write_image(tmp_path / "lr.png", matlab.imresize(hr, 0.5))
    result = run_cli("drcn.benchmarks.cli", "compare", str(tmp_path / "lr.png"), "--hr", str(tmp_path / "hr.png"),
                     "--model", str(tiny_model_files[1]), "--backend", "onnxruntime", "--size", "64", "--zoom", "1")
    assert result.returncode == 0, result.stderr
    assert "nearest, bicubic, drcn, HR original" in result.stdout and "bicubic" in result.stdout
    picture = read_image(tmp_path / "lr_compare.png")
    assert picture.shape == (64 + 26, 4 * 64 + 3 * 4, 3)
    wrong = run_cli("drcn.benchmarks.cli", "compare", str(tmp_path / "lr.png"), "--hr", str(tmp_path / "lr.png"),
                    "--model", str(tiny_model_files[1]), "--backend", "onnxruntime")
    assert wrong.returncode == 2 and "--hr" in wrong.stderr


def test_paths_measures_both_paths_and_the_network_alone(tmp_path, tiny_model_files):
    import json

    from conftest import run_cli

    out = tmp_path / "paths.json"
    result = run_cli("drcn.benchmarks.cli", "paths", "--model", str(tiny_model_files[1]), "--backend", "onnxruntime",
                     "--size", "96x64", "--frames", "2", "--tile", "32", "--json", str(out))
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())
    assert [r["path"] for r in records] == ["host", "device"]
    assert all(r["fps"] > 0 and r["frames"] == 2 for r in records) and records[1]["network_fps"] > 0
    assert "device path: the whole frame" in records[1]["description"]


def test_latency_default_measures_what_drcn_run_runs_and_depth_variants(tiny_model_files, tmp_path, cache):
    from drcn.runtime.backends.select import auto_onnx_backend

    out = tmp_path / "auto.json"
    assert cli.main(["latency", "--weights", str(tiny_model_files[0]), "--tile", "16", "--batch", "2",
                     "--repeat", "1", "--warmup", "0", "--depth", "1,2", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    backends = list(dict.fromkeys([auto_onnx_backend(), "onnxruntime"]))
    assert [(r["backend"], r["depth"]) for r in records] == [(b, d) for b in backends for d in (1, 2)]
    assert all(r["precision"].startswith("auto=") for r in records)


@pytest.mark.slow
def test_bench_serve_measures_load_beside_drcn_run(tmp_path, tiny_model_files):
    pytest.importorskip("ray.serve")
    pytest.importorskip("aiohttp")
    import json

    result = run_cli("drcn.benchmarks.cli", "serve", "--onnx", str(tiny_model_files[1]), "--backend", "onnxruntime",
                     "--seconds", "2", "--clients", "1,3", "--size", "40x32", "--images", "2", "--json",
                     str(tmp_path / "serve.json"), "--md", str(tmp_path / "serve.md"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "serve.json").read_text())
    assert [r["clients"] for r in record["runs"]] == [1, 3]
    assert all(r["ok"] > 0 and not r["errors"] for r in record["runs"])
    assert record["drcn_run_fps"] > 0 and record["api_p50_ms"] > 0 and record["saturation_vs_drcn_run"] > 0
    assert "requests/s" in (tmp_path / "serve.md").read_text()
