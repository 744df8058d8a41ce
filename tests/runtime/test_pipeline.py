"""run_frames: frames in flight for backends that keep several requests busy, written in input order, a frame that
cannot be read reported by name, a backend failure stopping the run."""

import threading
import time

import numpy as np
import pytest

from drcn.runtime.media.jobs import Frame
from drcn.runtime.pipeline import run_frames


class _Stages:
    """Inference takes longer for early frames, so frames in flight finish out of order."""

    def __init__(self, in_flight: int, fail_at: int | None = None):
        self.in_flight, self.fail_at = in_flight, fail_at
        self.active = self.most = 0
        self.lock = threading.Lock()
        self.threads: set[str] = set()

    def prepare(self, image, source="image"):
        return image

    def infer(self, image):
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
            self.threads.add(threading.current_thread().name)
        index = int(image[0, 0])
        if index == self.fail_at:
            raise RuntimeError("the backend broke")
        time.sleep(0.02 * (8 - index % 8) / 8)
        with self.lock:
            self.active -= 1
        return image * 2

    def finish(self, prepared, result):
        return result


def _frames(count: int, unreadable: int | None = None) -> list[Frame]:
    def loader(i):
        def load():
            if i == unreadable:
                raise OSError(f"frame {i} is unreadable")
            return np.full((2, 3), i, np.uint8)
        return load

    return [Frame(f"f{i}", loader(i)) for i in range(count)]


@pytest.mark.parametrize("in_flight", [1, 3])
def test_frames_in_flight_are_written_in_order(in_flight):
    stages, written = _Stages(in_flight), []
    summary = run_frames(_frames(20, unreadable=5), 20, stages, lambda f, image: written.append((f.name, image)),
                         ordered_writes=True, show_progress=False)
    assert [name for name, _ in written] == [f"f{i}" for i in range(20) if i != 5]
    assert all((image == 2 * int(name[1:])).all() for name, image in written)
    assert summary.done == 19 and summary.failed == [("f5", "OSError: frame 5 is unreadable")]
    if in_flight == 1:
        assert stages.most == 1 and stages.threads == {threading.main_thread().name}
    else:
        assert 1 < stages.most <= in_flight and threading.main_thread().name not in stages.threads
    assert 0 < summary.compute_seconds <= summary.seconds   # overlapping frames count once


@pytest.mark.parametrize("in_flight", [1, 3])
def test_a_backend_failure_stops_the_run(in_flight):
    with pytest.raises(RuntimeError, match="the backend broke"):
        run_frames(_frames(12), 12, _Stages(in_flight, fail_at=4), lambda f, image: None, show_progress=False)
