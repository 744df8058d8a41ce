"""drcn-bench figure: each kind draws from the code's own plans or measured records, and answers a bad input in one
line; the machine header every drcn-bench table opens with reads back as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drcn.benchmarks import cli, machine

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "cpu"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_tiles_are_drawn_from_the_tiling_plan(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "tiles.png"
    assert cli.main(["figure", "tiles", "--size", "640x360", "--tile", "256", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    # 640 columns at tile 256: three tiles of 214 (the last 212), 360 rows: two of 180; windows 240x206
    assert "tiles 6" in printed and "window (206, 240)" in printed and "computed_share 1.288" in printed
    assert png_size(out)[0] > 400
    assert cli.main(["figure", "tiles", "--size", "100x80", "--tile", "256", "-o", str(out)]) == 0
    assert "tiles 1" in capsys.readouterr().out          # smaller than one window: one whole window


def test_the_jobs_and_paths_figures_read_the_records_the_benchmarks_wrote(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    record = json.loads((RESULTS / "serve_jobs.json").read_text())
    out = tmp_path / "jobs.png"
    assert cli.main(["figure", "jobs", str(RESULTS / "serve_jobs.json"), "-o", str(out)]) == 0
    ratio = round((record["frames"] / record["job_s"]) / (record["frames"] / record["drcn_run_s"]), 3)
    assert f"job_vs_drcn_run {ratio}" in capsys.readouterr().out and out.is_file()
    assert cli.main(["figure", "paths", str(RESULTS / "host.json"), str(RESULTS / "paths.json"), "-o",
                     str(tmp_path / "paths.png")]) == 0
    runs = {r["path"]: round(r["fps"], 3) for r in json.loads((RESULTS / "paths.json").read_text())}
    assert f"host {runs['host']}, device {runs['device']}" in capsys.readouterr().out


def test_a_record_of_another_kind_is_one_line_naming_it(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"something": 1}))
    with pytest.raises(SystemExit) as ended:
        cli.main(["figure", "jobs", str(wrong), "-o", str(tmp_path / "x.png")])
    assert ended.value.code != 0 and not (tmp_path / "x.png").exists()
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "wrong.json: not a drcn-bench jobs record" in said[0]
    with pytest.raises(SystemExit):
        cli.main(["figure", "segments", str(tmp_path / "missing.mkv"), "-o", str(tmp_path / "s.png")])
    assert "missing.mkv: no such video" in capsys.readouterr().err


def test_segments_are_drawn_from_the_segment_plan_of_a_real_clip(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("av")
    from drcn.runtime.media.sample_video import write_sample_video

    clip = tmp_path / "clip.mkv"
    assert write_sample_video(clip, seconds=3.0, size=(32, 48), audio=False) == 72
    assert cli.main(["figure", "segments", str(clip), "--segment", "1", "-o", str(tmp_path / "s.png")]) == 0
    printed = capsys.readouterr().out
    # one keyframe (libx264's interval is longer than the clip): three segments, two of them starting mid-GOP
    assert "frames 72" in printed and "keyframes 1" in printed and "segments 3" in printed and "mid_gop 2" in printed


def test_the_deviation_of_fp32_from_itself_is_zero_and_a_missing_precision_is_said(tmp_path, capsys,
                                                                                tiny_model_files):
    pytest.importorskip("matplotlib")
    pytest.importorskip("openvino")
    from drcn.images import write_image
    from drcn.samples import load_sample

    image = tmp_path / "coffee.png"
    write_image(image, load_sample("coffee")[:96, :128])
    _, onnx = tiny_model_files
    out = tmp_path / "d.png"
    assert cli.main(["figure", "deviation", str(image), "--onnx", str(onnx), "--precision", "fp32,int8",
                     "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "'fp32': {'max': 0.0, 'share_over_bound': 0.0}" in printed    # the same kernels: not a level apart
    assert "not_run {'int8': '--precision int8: no INT8 graph" in printed and out.is_file()


def test_the_machine_header_reads_back_as_written(tmp_path):
    facts = machine.facts()
    assert facts["cores"] >= 1 and facts["isa"] in ("AMX", "AVX-512 VNNI + BF16", "AVX-512 VNNI", "AVX-512", "AVX2",
                                                    "below AVX2")
    command = machine.command_line(["jobs", "--md", str(tmp_path / "x.md")])
    assert command == "drcn-bench jobs --md x.md"                    # a path of this machine: its file name only
    page = tmp_path / "x.md"
    page.write_text(machine.header(facts, command) + "| a |\n|---|\n| 1 |\n")
    read = machine.read_header(page)
    assert read["cpu"] == facts["cpu"] and read["isa"] == facts["isa"] and read["cores"] == str(facts["cores"])
    assert read["date"] == facts["date"] and read["command"] == command
    assert machine.isa_level(frozenset({"avx2"})) == "AVX2"
    assert machine.isa_level(frozenset({"avx2", "avx512f", "avx512_vnni"})) == "AVX-512 VNNI"
    assert machine.isa_level(frozenset({"avx512f", "avx512_vnni", "avx512_bf16", "amx_int8"})) == "AMX"
    page.write_text("| a |\n")
    assert machine.read_header(page) is None


def test_drcn_bench_writes_the_header_into_its_markdown(tmp_path, image_folder):
    md = tmp_path / "q.md"
    assert cli.main(["quality", str(image_folder), "--scale", "2", "--method", "bicubic", "--md", str(md)]) == 0
    header = machine.read_header(md)
    assert header is not None and header["command"].startswith("drcn-bench quality ")
    text = md.read_text()
    assert str(tmp_path) not in text and "| bicubic |" in text.splitlines()[4]
