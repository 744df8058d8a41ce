"""The Ray driver's task pool and its checks, with a stand-in for Ray (no cluster): a task whose worker never
answers is redone by a fresh worker after the timeout; three losses of one task stop the run in one line; a failed
video drops its other tasks; a folder the workers do not see is named before any work."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drcn.errors import DrcnError
from drcn.runtime import ray_run


class FakeRay:
    """ray.wait/get/kill over plain objects: a ref is ('ok', value), ('hang',) or ('died',)."""

    class exceptions:
        class RayError(Exception):
            pass

        class RayActorError(RayError):
            pass

    def __init__(self):
        self.killed = []

    def wait(self, refs, num_returns=1, timeout=None):
        ready = [r for r in refs if r[0] != "hang"]
        if not ready:
            time.sleep(min(timeout or 0.01, 0.01))
        return ready[:num_returns], [r for r in refs if r not in ready[:num_returns]]

    def get(self, ref):
        if isinstance(ref, list):
            return [self.get(r) for r in ref]
        if ref[0] == "died":
            raise self.exceptions.RayActorError("actor died")
        return ref[1]

    def kill(self, actor, no_restart=True):
        self.killed.append(actor)


def test_a_task_whose_worker_never_answers_is_redone_after_the_timeout():
    ray, log, done = FakeRay(), [], []
    fresh = iter(["fresh-1", "fresh-2"])
    pool = ray_run._Pool(ray, ["stuck"], lambda: next(fresh), timeout=0.05, log=log.append)
    pool.poll = 0.01
    pool.add(ray_run._Task("film.mkv segment 3", lambda actor: ("hang",) if actor == "stuck" else ("ok", actor),
                           done.append))
    pool.run()
    assert done == ["fresh-1"] and ray.killed == ["stuck"]
    assert "film.mkv segment 3: the worker gave no answer within 0 s (--task-timeout)" in log[0]


def test_three_losses_of_one_task_stop_the_run_in_one_line():
    ray = FakeRay()
    pool = ray_run._Pool(ray, ["a"], lambda: "b", timeout=None, log=lambda _: None)
    pool.add(ray_run._Task("frames x.png..", lambda actor: ("died",), lambda data: None))
    with pytest.raises(DrcnError, match="frames x.png..: its worker died 3 time"):
        pool.run()


def test_a_failed_video_drops_its_queued_tasks_and_the_others_go_on():
    ray, done, failed = FakeRay(), [], []
    pool = ray_run._Pool(ray, ["a"], lambda: "b", timeout=None, log=lambda _: None)
    video, other = object(), object()

    def refuse(actor):
        raise AssertionError("submitted after its video failed")

    def failing(actor):
        return ("error",)

    class Failing(FakeRay):
        def get(self, ref):
            if ref[0] == "error":
                raise self.exceptions.RayError("the resolution changes")
            return super().get(ref)

    pool.ray = Failing()
    pool.add(ray_run._Task("v segment 1", failing, done.append, lambda error: (failed.append(str(error)),
                                                                              pool.drop(video)), owner=video))
    pool.add(ray_run._Task("v segment 2", refuse, done.append, owner=video))
    pool.add(ray_run._Task("w", lambda actor: ("ok", "w done"), done.append, owner=other))
    pool.run()
    assert done == ["w done"] and len(failed) == 1


def test_a_folder_the_workers_do_not_see_is_named_before_any_work(tmp_path, monkeypatch):
    from drcn.runtime.media.jobs import Job

    class Worker:
        class sees:
            @staticmethod
            def remote(probe, token):
                return ("ok", "node-7" if "out" in probe else Path(probe).read_text() == token)

    job = Job("folder", tmp_path / "in", tmp_path / "out")
    with pytest.raises(DrcnError, match=r"out: the Ray worker on node-7 does not see this folder"):
        ray_run._check_shared(FakeRay(), [Worker()], job, [])
    assert not list((tmp_path / "out").iterdir())      # the probe is gone
    ray_run._check_shared(FakeRay(), [Worker()], Job("image", tmp_path / "a.png", tmp_path / "b.png"), [])
