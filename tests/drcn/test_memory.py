"""The memory budget (drcn.memory) and the checks that use it."""

from __future__ import annotations

import pytest

from drcn import memory
from drcn.errors import DrcnError, OverLimit


@pytest.mark.parametrize("text, value", [("8G", 8 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29),
                                         ("2097152", 2 << 20), (" 3 gb ", 3 << 30), ("1t", 1 << 40)])
def test_sizes_parse(text, value):
    assert memory.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "-1", "0", "1K", "nan", "8X", "G", "1e9"])
def test_bad_sizes_are_one_line_errors(text):
    with pytest.raises(DrcnError, match=memory.ENV):
        memory.parse_size(text)


def test_the_budget_comes_from_the_environment_or_the_machine(monkeypatch):
    monkeypatch.setenv(memory.ENV, "3G")
    assert memory.budget() == 3 << 30
    monkeypatch.delenv(memory.ENV)
    total = memory.machine_memory()
    assert total is None or memory.budget() == int(total * memory.DEFAULT_FRACTION)
    assert memory.rss_bytes() > 1 << 20


def test_work_reservations_admit_what_fits_beside_the_others():
    work = memory.WorkReservations(100 << 20)                    # 50 MiB for work
    assert work.limit == 50 << 20 and not work.fits_ever(51 << 20)
    assert work.reserve(30 << 20) and not work.reserve(30 << 20)
    with work.held(30 << 20):
        assert work.reserved == 30 << 20
    assert work.reserved == 0 and work.reserve(50 << 20)
    assert memory.WorkReservations(None).reserve(1 << 50)       # unknown machine: no bound


def test_the_compiled_ledger_says_when_the_process_is_over_its_share(monkeypatch):
    monkeypatch.setenv(memory.ENV, "100M")
    ledger, owner = memory.CompiledLedger(), object()
    ledger.add(owner, "a", 30 << 20)
    assert not ledger.over()
    ledger.add(owner, "b", 20 << 20)                              # 50 MiB > 40% of 100 MiB
    assert ledger.over() and ledger.total() == 50 << 20
    ledger.remove(owner, "a")
    assert not ledger.over()


def test_a_frame_over_the_working_share_is_refused_by_name(monkeypatch):
    from drcn.limits import check_memory

    monkeypatch.setenv(memory.ENV, "64M")
    with pytest.raises(OverLimit, match=r"photo\.png: a 2000x2000 output .* memory budget of 0\.1 GiB"):
        check_memory(2000, 2000, "photo.png")
    check_memory(500, 500, "small.png")                          # 16 MiB fits in 32


def test_openvino_keeps_fewer_shapes_when_they_hold_more_than_their_share(monkeypatch, tiny_model_files):
    pytest.importorskip("openvino")
    import numpy as np

    from drcn.runtime.backends.openvino_backend import OpenVINOBackend

    backend = OpenVINOBackend(str(tiny_model_files[1]), precision="fp32")
    try:
        for size in (24, 28, 32):
            backend.run(np.zeros((1, 1, size, size), np.float32))
        assert len(backend._shapes) == 3                            # the default budget holds them all
        mine = [key for key in memory.COMPILED._held if key[0] == id(backend)]
        assert len(mine) == 3 and sum(memory.COMPILED._held[key][0] for key in mine) > 0   # measured, in bytes
        monkeypatch.setattr(memory.COMPILED, "limit", lambda: 1)   # the process holds more than its share
        backend.run(np.zeros((1, 1, 36, 36), np.float32))
        assert list(backend._shapes) == [(1, 1, 36, 36)]           # the older shapes were dropped
        assert [key[1] for key in memory.COMPILED._held if key[0] == id(backend)] == [(1, 1, 36, 36)]
    finally:
        backend.close()
    assert all(key[0] != id(backend) for key in memory.COMPILED._held)


def test_the_least_recently_used_shape_is_dropped_whichever_backend_holds_it(monkeypatch, tiny_model_files):
    """A replica holds one backend per scale: over the share, the shape used longest ago goes, not the newest
    backend's only one (each backend used to keep at least one, whatever the share)."""
    pytest.importorskip("openvino")
    import numpy as np

    from drcn.runtime.backends.openvino_backend import OpenVINOBackend

    first, second = (OpenVINOBackend(str(tiny_model_files[1]), precision="fp32") for _ in range(2))
    try:
        first.run(np.zeros((1, 1, 24, 24), np.float32))
        second.run(np.zeros((1, 1, 28, 28), np.float32))
        first.run(np.zeros((1, 1, 32, 32), np.float32))
        first.run(np.zeros((1, 1, 24, 24), np.float32))            # used again: now the newest of the first's
        held = {key: entry[0] for key, entry in memory.COMPILED._held.items()}
        mine = sum(held[key] for key in held if key[0] in (id(first), id(second)))
        others = sum(held.values()) - mine
        # Room for all but one of the three: the one used longest ago, the second backend's 28x28, goes first.
        limit = others + mine - 1
        monkeypatch.setattr(memory.COMPILED, "limit", lambda: limit)
        assert memory.COMPILED.make_room(first, (1, 1, 24, 24)) >= 1
        assert (1, 1, 28, 28) not in second._shapes and (1, 1, 24, 24) in first._shapes
        second.run(np.zeros((1, 1, 28, 28), np.float32))            # still answers: compiled again
        assert (1, 1, 28, 28) in second._shapes
    finally:
        first.close()
        second.close()


def test_the_shares_are_of_what_is_left_after_the_baseline(monkeypatch):
    """A replica's budget bounds its whole resident memory: compiled models and requests share what its loaded
    model leaves; the heap is given back when no request is held."""
    monkeypatch.setenv(memory.ENV, "1G")
    monkeypatch.setattr(memory, "_BASELINE", 0)
    assert memory.available() == 1 << 30 and memory.CompiledLedger().limit() == int((1 << 30) * memory.MODEL_SHARE)
    memory.set_baseline(400 << 20)
    assert memory.available() == 624 << 20
    assert memory.CompiledLedger().limit() == int((624 << 20) * memory.MODEL_SHARE)
    trims = []
    monkeypatch.setattr(memory, "give_back_freed", lambda: trims.append(1))
    work = memory.WorkReservations(memory.available())
    assert work.limit == 312 << 20 and work.reserve(10 << 20) and work.reserve(10 << 20)
    work.release(10 << 20)
    assert trims == []
    work.release(10 << 20)
    assert trims == [1]
