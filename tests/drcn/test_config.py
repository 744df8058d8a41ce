import subprocess
import sys

import pytest

from drcn import DrcnError, ModelConfig


def test_paper_defaults_and_derived_sizes():
    cfg = ModelConfig()
    assert (cfg.channels, cfg.filters, cfg.recursions) == (1, 256, 16)
    assert cfg.halo == 20 and cfg.receptive_field == 41 and cfg.convolutions == 20
    assert cfg.num_parameters == 1_775_121
    # Design notes: about 19.5 M multiply-adds per output pixel at the paper configuration.
    assert 19.0e6 < cfg.macs_per_pixel < 20.0e6


def test_json_round_trip_and_frozen():
    cfg = ModelConfig(filters=64, recursions=9, scales=(2, 3))
    again = ModelConfig.from_json(cfg.to_json())
    assert again == cfg and again.scales == (2.0, 3.0)
    with pytest.raises(Exception):
        cfg.filters = 3  # frozen


@pytest.mark.parametrize("bad", [{"filters": 0}, {"recursions": -1}, {"channels": 1.5}, {"scales": (1.0,)},
                                 {"nonsense": 1}])
def test_invalid_configs_are_user_errors(bad):
    with pytest.raises(DrcnError):
        ModelConfig.from_dict(bad)


def test_importing_drcn_does_not_import_torch():
    code = "import drcn, drcn.matlab, drcn.metrics, drcn.weights, drcn.benchmarks.cli, sys; " \
           "assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_progress_prints_lines_off_terminal_at_an_interval():
    import io

    from drcn.progress import Progress

    stream = io.StringIO()
    with Progress("work", total=5, stream=stream, interval=0.0) as p:
        for _ in range(5):
            p.update(extra="item")
    lines = stream.getvalue().splitlines()
    assert lines and lines[0].startswith("work: 1/5") and len(lines) == 4  # not after the last item
    quiet = io.StringIO()
    with Progress("work", total=5, stream=quiet, enabled=False) as p:
        p.update()
    assert quiet.getvalue() == ""
