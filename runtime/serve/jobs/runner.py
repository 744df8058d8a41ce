"""The thread of a replica that runs video jobs: it takes the oldest unfinished job no other replica holds (a lock
in the job's folder, released when a process ends however it ends), runs it through drcn-run's video code
(:func:`drcn.runtime.media.video_job.upscale_video`: segments that survive a kill, resumed at the first unfinished
one) on the replica's own model, and keeps the job's record up to date.

The job's windows go through the replica's window scheduler under a ticket of its own (:mod:`drcn.cancel`): the
scheduler serves the request with the fewest windows computed first, so an image request arriving while a film runs
waits for at most the window in progress. Cancelling (a ``cancel`` file in the job's folder, seen by whichever
replica runs it) cancels that ticket: the work stops at its next window.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from drcn.cancel import CURRENT, Cancelled, Ticket
from drcn.errors import DrcnError
from drcn.runtime.serve.jobs.options import JobOptions
from drcn.runtime.serve.jobs.store import UNFINISHED, JobRecord, JobStore

LOG = logging.getLogger("drcn.serve.jobs")
FRAMES_HELD = 6          # decoded, in inference and being encoded at once: a job's working memory in frames
POLL_S = 0.5
SWEEP_S = 60.0


class JobStopped(BaseException):
    """The job's work stops here (cancelled, or the replica is stopping): a BaseException, so that no per-frame
    handler of the pipeline takes it for one frame's failure and goes on."""


JOB_NICE = 5             # how much nicer a job's decoding, colour and encoding threads are than the replica's own
_niced = threading.local()


def _yield_to_images() -> None:
    """Lower this thread's CPU priority once, relative to where it is (Ray starts replicas at niceness 15): a job's
    host work (decoding, colour, bicubic, encoding) then gives way to the image requests'. The backend's own threads
    are shared and stay as they are."""
    if getattr(_niced, "done", False):
        return
    _niced.done = True
    try:
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + JOB_NICE))
    except (OSError, AttributeError):
        pass      # a platform without per-thread priorities: the job runs as it is


class _TicketStages:
    """A replica's Upscaler with the job's ticket current around every stage (whatever thread runs it), counting
    the frames finished; the Upscaler's attributes read through (the work folder's manifest records them)."""

    def __init__(self, stages, ticket: Ticket, stopped: Callable[[], bool] | None = None):
        """``stopped``: asked before each stage; True cancels the ticket (a helper's way to see a cancel)."""
        self._stages, self._ticket, self.frames, self._stopped = stages, ticket, 0, stopped
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self._stages, name)

    def _call(self, fn, *args):
        _yield_to_images()
        if self._stopped is not None and self._stopped():
            self._ticket.cancel("cancelled")
        if self._ticket.cancelled:
            raise JobStopped(self._ticket.reason)
        token = CURRENT.set(self._ticket)
        try:
            return fn(*args)
        except Cancelled as exc:
            raise JobStopped(str(exc)) from None
        finally:
            CURRENT.reset(token)

    def prepare(self, image, source: str = "image"):
        return self._call(self._stages.prepare, image, source)

    def infer(self, prepared):
        return self._call(self._stages.infer, prepared)

    def finish(self, prepared, result):
        image = self._call(self._stages.finish, prepared, result)
        with self._lock:
            self.frames += 1
        return image


class JobRunner:
    """Runs the jobs of ``store`` one at a time on ``upscaler_for(scale)``'s stages. ``reserve(nbytes)``: a
    context holding that much of the replica's working memory, or None where it does not fit now (the job waits);
    DrcnError where it never fits (the job fails)."""

    def __init__(self, store: JobStore, upscaler_for: Callable[[float], object],
                 reserve: Callable[[int, str], contextlib.AbstractContextManager | None], ttl_s: float,
                 callback_allow: tuple[str, ...] = ()):
        self.store, self.upscaler_for, self.reserve, self.ttl_s = store, upscaler_for, reserve, ttl_s
        self.callback_allow = callback_allow
        self._stop = threading.Event()
        self._ticket: Ticket | None = None
        self._thread = threading.Thread(target=self._loop, name="drcn-jobs", daemon=True)
        self.counts = {"segments_done": 0, "job_seconds": 0.0}
        self._settings: dict[tuple, dict] = {}

    def _pixel_settings(self, stages, options: JobOptions, output: Path) -> dict:
        """What changes a job's pixels on this replica (its model's checksum included): the replica's model does not
        change while it runs, so each is worked out once, not at every look for segments to help with."""
        from drcn.runtime.media.video_job import pixel_settings

        key = (options, output.suffix)
        if key not in self._settings:
            self._settings[key] = pixel_settings(stages, options.scale, options.encode(), output)
        return self._settings[key]

    def start(self) -> None:
        self._thread.start()

    def close(self, wait_s: float = 20.0) -> None:
        """Stop: the job in hand stops at its next window and stays unfinished on disk (the next start resumes it)."""
        self._stop.set()
        ticket = self._ticket
        if ticket is not None:
            ticket.cancel("the replica is stopping")
        self._thread.join(wait_s)

    # -- the loop ----------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        swept = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - swept > SWEEP_S:
                    self.store.sweep(self.ttl_s)
                    swept = time.monotonic()
                if not self._run_next():
                    self._stop.wait(POLL_S)
            except Exception:  # noqa: BLE001 - the loop must outlive one bad job folder; logged in full
                LOG.exception("the job loop failed; going on")
                self._stop.wait(POLL_S)

    def _run_next(self) -> bool:
        """Run the oldest unfinished job nobody holds; False where there was none to run."""
        from drcn.runtime.media.segments import WorkLock

        elsewhere = []
        for record in self.store.all():
            if record.state not in UNFINISHED or self.store.cancel_marker(record.id).exists():
                if record.state in UNFINISHED:
                    self._cancelled(record)
                continue
            try:
                lock = WorkLock(self.store.lock_path(record.id), Path(record.name))
            except DrcnError:
                elsewhere.append(record)         # another replica runs it: this one may help with its segments
                continue
            except FileNotFoundError:
                continue                         # removed as we looked
            try:
                fresh = self.store.get(record.id)          # as it is now that we hold it
                if fresh is None or fresh.state not in UNFINISHED:
                    continue
                return self._run(fresh)
            finally:
                lock.release()
        return any(self._help(record) for record in elsewhere if record.state == "running")

    def _help(self, record: JobRecord) -> bool:
        """Take segments of a job another replica runs (each decoded from the keyframe before it); whether any was
        done. The replica running the job joins them."""
        from drcn.runtime.media.video_job import help_with_segments

        options = JobOptions(**record.options)
        output = self.store.result(record)
        ticket = self._ticket = Ticket(f"job {record.id} (helping)")

        def stopped() -> bool:
            return self._stop.is_set() or self.store.cancel_marker(record.id).exists()

        stages = _TicketStages(self.upscaler_for(options.scale).with_windows(fixed=False), ticket, stopped)
        try:
            settings = self._pixel_settings(stages, options, output)
            done = help_with_segments(self.store.input(record.id), output, options.scale, stages, options.encode(),
                                      settings, stop=stopped)
        except JobStopped:
            return False
        except (DrcnError, OSError) as exc:     # the job's own replica meets it too, and fails the job in one line
            LOG.info("job %s: helping stopped: %s", record.id, exc)
            return False
        finally:
            self._ticket = None
        self.counts["segments_done"] += done
        return done > 0

    # -- one job -----------------------------------------------------------------------------------------------
    def _run(self, record: JobRecord) -> bool:
        from drcn.limits import working_memory
        from drcn.runtime.media import colour
        from drcn.runtime.media.video_job import VideoProgress, upscale_video

        options = JobOptions(**record.options)
        width, height = record.input.get("width", 0), record.input.get("height", 0)
        out_h, out_w = colour.output_size(height, width, options.scale)
        try:
            held = self.reserve(working_memory(out_h, out_w) * FRAMES_HELD, f"job {record.id}")
        except DrcnError as exc:
            self._end(record, "failed", error=str(exc))
            return True
        if held is None:
            return False                         # not now: the images in hand hold the memory
        output = self.store.result(record)
        source = self.store.input(record.id)
        ticket = self._ticket = Ticket(f"job {record.id}")
        with held:
            # Equal windows, as drcn-run cuts them: a video's frames share one size, so one compiled shape either way.
            stages = _TicketStages(self.upscaler_for(options.scale).with_windows(fixed=False), ticket)
            settings = self._pixel_settings(stages, options, output)
            if record.settings is None:
                record.settings = settings
            elif record.settings != settings:
                changed = sorted(k for k in set(settings) | set(record.settings)
                                 if settings.get(k) != record.settings.get(k))
                self._end(record, "failed", error=f"{record.name}: the server's {', '.join(changed)} changed since "
                                                  "this job started; its parts would not join: submit it again")
                return True
            if output.exists():                  # finished before a kill took the record's last word
                self._done(record, output, None)
                return True
            record.state, record.started = "running", record.started or time.time()
            self.store.save(record)
            progress = VideoProgress(frames_total=record.frames_total)
            watching = threading.Event()
            watcher = threading.Thread(target=self._watch, args=(record, ticket, stages, progress, watching),
                                       name="drcn-job-watch", daemon=True)
            watcher.start()
            started = time.monotonic()
            try:
                summary = upscale_video(source, output, options.scale, stages, options.encode(),
                                        log=lambda line: LOG.info("job %s: %s", record.id, line), progress=progress)
                failure = None
            except (JobStopped, Exception) as exc:  # noqa: BLE001 - a job's failure is the job's, answered below
                failure = exc
            finally:
                self._ticket = None
                self.counts["job_seconds"] += time.monotonic() - started
                watching.set()
                watcher.join()          # before the record's last word: the watcher saves it too
            if isinstance(failure, JobStopped):
                if self.store.cancel_marker(record.id).exists():
                    self._cancelled(record)
                else:
                    self._update(record, stages, progress, started)   # stays running: resumed at the next start
            elif isinstance(failure, DrcnError):
                self._end(record, "failed", error=self._said(str(failure), record))
            elif failure is not None:
                LOG.error("job %s failed", record.id, exc_info=failure)
                self._end(record, "failed", error=f"internal error ({type(failure).__name__}); the server logged "
                                                  f"it under job {record.id}")
            else:
                self._update(record, stages, progress, started)
                loss = "; ".join(summary.lost) or None
                self._done(record, output, loss and self._said(loss, record))
        return True

    def _watch(self, record: JobRecord, ticket: Ticket, stages: _TicketStages, progress, done: threading.Event):
        started = time.monotonic()
        while not done.wait(1.0):
            if self.store.cancel_marker(record.id).exists() or not self.store.folder(record.id).is_dir():
                ticket.cancel("cancelled")
            self._update(record, stages, progress, started)

    def _update(self, record: JobRecord, stages: _TicketStages, progress, started: float) -> None:
        before = record.segments_done
        record.frames_total = progress.frames_total or record.frames_total
        record.segments_total = progress.segments_total or record.segments_total
        record.segments_done = progress.segments_done
        record.resumed_segments = progress.resumed_segments
        record.helped_segments = progress.helped_segments
        record.frames_done = min(progress.resumed_frames + stages.frames, record.frames_total or 1 << 62)
        elapsed = time.monotonic() - started
        record.fps = round(stages.frames / elapsed, 3) if elapsed > 0 and stages.frames else None
        left = max(0, record.frames_total - record.frames_done)
        record.eta_s = round(left / record.fps, 1) if record.fps else None
        self.counts["segments_done"] += max(0, record.segments_done - before)
        self.store.save(record)

    def _done(self, record: JobRecord, output: Path, warning: str | None) -> None:
        from drcn.runtime.media.segments import WorkFolder

        record.frames_done = max(record.frames_done, record.frames_total)
        record.segments_done = record.segments_total
        record.result_bytes = output.stat().st_size
        record.eta_s = 0.0
        self._end(record, "done", warning=warning)
        WorkFolder(output).remove()     # what a kill between the join's rename and its clean-up left

    def _cancelled(self, record: JobRecord) -> None:
        self.store.clear_work(record)
        self._end(record, "cancelled")

    def _end(self, record: JobRecord, state: str, error: str | None = None, warning: str | None = None) -> None:
        record.state, record.error, record.warning = state, error, warning
        record.finished = time.time()
        if state != "done":
            record.eta_s = None
        self.store.save(record)
        LOG.info("job %s: %s%s", record.id, state, f" ({error})" if error else "")
        if record.callback and record.callback_key:
            from drcn.runtime.serve.jobs import callbacks

            callbacks.send(record.callback, record.callback_key, {**record.public(), "url": f"/v1/jobs/{record.id}"},
                           self.callback_allow)

    def _said(self, text: str, record: JobRecord) -> str:
        """A message as a client may read it: the server's paths as the job's names."""
        from drcn.runtime.serve.redact import without_paths

        text = text.replace(str(self.store.input(record.id)), record.name)
        text = text.replace(str(self.store.result(record)), f"result.{record.container}")
        return without_paths(text.strip().splitlines()[0] if text.strip() else text)


def job_gauges(runner: JobRunner | None) -> dict:
    """The job series of a replica's metrics (:mod:`drcn.runtime.serve.metrics`); zeros where jobs are off."""
    from drcn.runtime.serve.jobs.store import STATES

    states = dict.fromkeys(STATES, 0)
    if runner is None:
        return {"drcn_jobs": states, "drcn_job_disk_bytes": 0, "drcn_job_segments_total": 0,
                "drcn_job_seconds_total": 0.0}
    for record in runner.store.all():
        states[record.state] = states.get(record.state, 0) + 1
    return {"drcn_jobs": states, "drcn_job_disk_bytes": runner.store.disk_used(),
            "drcn_job_segments_total": runner.counts["segments_done"],
            "drcn_job_seconds_total": runner.counts["job_seconds"]}
