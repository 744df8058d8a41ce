"""Video jobs over HTTP against a real drcn-serve on loopback with a token: a clip with audio and subtitles submitted,
polled to done and fetched equals drcn-run's output (ffv1 frames, timestamps, audio packets); the server's process
group SIGKILLed mid-job and started again finishes the job without redoing finished segments; a cancel stops the work
and removes the parts; bad uploads are refused in JSON and leave nothing on disk; Range, If-Range and the signed link;
tokens see only their own jobs."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

av = pytest.importorskip("av")
pytest.importorskip("ray.serve")
pytest.importorskip("onnxruntime")
psutil = pytest.importorskip("psutil")

from test_video import make_clip, packets, run  # noqa: E402
from test_video_segments import assert_same_video  # noqa: E402

pytestmark = pytest.mark.slow
TOKENS = ("alpha-token", "beta-token")


def Server(tmp: Path, onnx: Path, jobs: Path, *extra: str):
    from drcn.benchmarks.serve_bench import ServeProcess

    token_file = tmp / "tokens.txt"
    token_file.write_text("# one a line\n" + "\n".join(TOKENS) + "\n")
    return ServeProcess("--onnx", str(onnx), "--backend", "onnxruntime", "--tile", "32", "--threads", "1",
                        "--token-file", str(token_file), "--job-dir", str(jobs), *extra, ready_s=180, cwd=tmp)


def call(url: str, method: str = "GET", body: bytes | None = None, token: str | None = TOKENS[0],
         headers: dict | None = None, timeout: float = 60) -> tuple[int, dict, bytes]:
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def submit(server, clip: Path, query: str = "codec=ffv1&segment=0.5", token: str = TOKENS[0]) -> dict:
    status, _, body = call(f"{server.url}/v1/jobs?{query}&name={clip.name}", "POST", clip.read_bytes(), token)
    assert status == 202, body
    return json.loads(body)


def wait_for(server, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 240,
             token: str = TOKENS[0]) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = call(f"{server.url}/v1/jobs/{job_id}", token=token)
        assert status == 200, body
        job = json.loads(body)
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def leftovers(jobs: Path) -> list[str]:
    # the server's own files at the top (the link key, the cluster probe) are not a job's
    return sorted(str(p.relative_to(jobs)) for p in jobs.rglob("*")
                  if p.is_file() and not (p.parent == jobs and p.name in (".secret", ".shared-probe")))


@pytest.fixture
def onnx(tiny_model_files):
    return tiny_model_files[1]


def test_a_job_gives_what_drcn_run_gives_and_survives_a_kill(tmp_path, onnx):
    clip = tmp_path / "film.mkv"
    make_clip(clip, frames=120, size=(72, 96), subtitles=True)
    reference = tmp_path / "ref" / "film.mkv"
    done = run(clip, "-o", reference, "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime", "--codec", "ffv1",
               "--segment", "0")
    assert done.returncode == 0, done.stderr
    jobs = tmp_path / "jobs"
    server = Server(tmp_path, onnx, jobs)
    try:
        job = submit(server, clip)
        assert job["state"] == "queued" and job["url"] == f"/v1/jobs/{job['id']}" and job["result_url"] is None
        assert job["frames_total"] == 120 and "owner" not in job
        # another token does not see it
        assert call(f"{server.url}{job['url']}", token=TOKENS[1])[0] == 404
        assert call(f"{server.url}/v1/jobs", token=None)[0] == 401
        listed = json.loads(call(f"{server.url}/v1/jobs", token=TOKENS[1])[2])["jobs"]
        assert listed == []
        # killed (every process of the server's tree) once some segments are done
        while True:
            now = json.loads(call(f"{server.url}{job['url']}")[2])
            if now["segments_done"] >= 2:
                break
            assert now["state"] in ("queued", "running"), now
            time.sleep(0.1)
        server.kill()
    except BaseException:
        server.stop()
        raise
    done_before = now["segments_done"]
    server = Server(tmp_path, onnx, jobs)
    try:
        finished = wait_for(server, job["id"])
        assert finished["state"] == "done" and finished["error"] is None, finished
        assert finished["resumed_segments"] >= done_before and finished["segments_done"] == finished["segments_total"]
        assert finished["frames_done"] == 120
        status, headers, body = call(f"{server.url}{finished['url']}/result")
        assert status == 200 and headers["content-type"] == "video/x-matroska" and "etag" in headers
        fetched = tmp_path / "fetched.mkv"
        fetched.write_bytes(body)
        assert_same_video(reference, fetched)
        for kind in ("audio", "subtitles"):
            assert packets(fetched, kind) == packets(clip, kind) and packets(clip, kind)
        # a download continues: Range, and If-Range with the ETag (a stale ETag gets the whole file)
        status, part_headers, part = call(f"{server.url}{finished['url']}/result",
                                          headers={"Range": "bytes=100-199", "If-Range": headers["etag"]})
        assert status == 206 and part == body[100:200] and part_headers["content-range"] == f"bytes 100-199/{len(body)}"
        status, _, whole = call(f"{server.url}{finished['url']}/result",
                                headers={"Range": "bytes=100-199", "If-Range": '"stale"'})
        assert status == 200 and whole == body
        # the signed link needs no token, and only for this job, until it expires
        link = finished["result_url"]
        status, _, signed = call(f"{server.url}{link}", token=None, headers={"Range": "bytes=0-9"})
        assert status == 206 and signed == body[:10]
        assert call(f"{server.url}{link.replace('sig=', 'sig=0')}", token=None)[0] == 403
        expired = link.split("expires=")[0] + "expires=1&sig=" + link.split("sig=")[1]
        assert call(f"{server.url}{expired}", token=None)[0] == 403
        # removed when asked: its folder goes
        assert call(f"{server.url}{finished['url']}", "DELETE")[0] == 200
        assert call(f"{server.url}{finished['url']}")[0] == 404 and leftovers(jobs) == []
    finally:
        assert server.stop() == 0, server.output()


def test_cancel_stops_the_work_and_bad_uploads_leave_nothing(tmp_path, onnx):
    jobs = tmp_path / "jobs"
    clip = tmp_path / "long.mp4"
    make_clip(clip, frames=240, size=(96, 128))
    server = Server(tmp_path, onnx, jobs, "--max-upload", "2M", "--max-jobs", "2")
    try:
        # refused before anything stays: not a video, cut short, no video stream, a bad option, a path in a name
        cases = [(b"this is not a video" * 100, "codec=ffv1", 415, "not a video FFmpeg can read"),
                 (clip.read_bytes()[:2000], "", 415, ""),
                 (clip.read_bytes(), "codec=../../bin/sh", 400, "codec '../../bin/sh'"),
                 (clip.read_bytes(), "scale=1", 400, "scale '1'"),
                 (clip.read_bytes(), "segment=-3", 400, "segment '-3'"),
                 (clip.read_bytes(), "container=avi", 400, "container 'avi'"),
                 (clip.read_bytes(), "codec=nonexistent_encoder", 400, "nonexistent_encoder"),
                 (clip.read_bytes(), "output=/etc/passwd", 400, "output: not an option"),
                 (b"\0" * (3 << 20), "", 413, "--max-upload"),
                 (b"", "", 400, "empty body")]
        audio_only = tmp_path / "sound.mka"
        with av.open(str(audio_only), "w") as out:
            stream = out.add_stream("aac", rate=48000)
            for _ in range(20):
                import numpy as np
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate = 48000
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        cases.append((audio_only.read_bytes(), "", 415, "has no video stream"))
        for body, query, expected, words in cases:
            status, headers, answer = call(f"{server.url}/v1/jobs?{query}", "POST", body)
            message = json.loads(answer)["error"]
            assert status == expected and words in message, (query, status, message)
            assert "/" not in message.replace("../../bin/sh", "") or "--" in message, message   # no server path
            assert leftovers(jobs) == [], (query, leftovers(jobs))
        # cancel a running job: it stops, its parts and input go, its record says cancelled
        job = submit(server, clip, "codec=ffv1&segment=0.3")
        wait_for(server, job["id"], ("running",))
        while json.loads(call(f"{server.url}{job['url']}")[2])["frames_done"] < 10:
            time.sleep(0.05)
        start = time.monotonic()
        status, _, body = call(f"{server.url}{job['url']}", "DELETE")
        assert status == 200 and json.loads(body)["state"] == "cancelled", body
        assert time.monotonic() - start < 10
        assert leftovers(jobs) == [f"{job['id']}/job.json"], leftovers(jobs)
        assert call(f"{server.url}{job['url']}/result")[0] == 409
        # the per-token limit: two queued or running, the third refused
        first, second = submit(server, clip), submit(server, clip)
        status, headers, body = call(f"{server.url}/v1/jobs?codec=ffv1&name=x.mp4", "POST", clip.read_bytes())
        assert status == 429 and "--max-jobs 2" in json.loads(body)["error"] and headers.get("retry-after")
        assert submit(server, clip, token=TOKENS[1])["state"] == "queued"      # another token has its own
        for made in (first, second):
            call(f"{server.url}{made['url']}", "DELETE")
    finally:
        assert server.stop() == 0, server.output()


def test_callbacks_the_disk_budget_stalled_uploads_and_metrics(tmp_path, onnx):
    import hashlib
    import hmac
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    heard: list[tuple[dict, bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            heard.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    listener = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    jobs = tmp_path / "jobs"
    small, big = tmp_path / "small.mkv", tmp_path / "big.mkv"
    make_clip(small, frames=24)
    make_clip(big, frames=240, size=(96, 128))
    server = Server(tmp_path, onnx, jobs, "--callback-allow", "127.0.0.1", "--upload-timeout", "2",
                    "--job-disk", "4M")
    try:
        hook = f"http://127.0.0.1:{listener.server_port}/hook"
        job = submit(server, small, f"codec=ffv1&callback={hook}")
        assert wait_for(server, job["id"])["state"] == "done"
        deadline = time.monotonic() + 20
        while not heard and time.monotonic() < deadline:
            time.sleep(0.1)
        headers, body = heard[0]
        key = bytes.fromhex(hashlib.sha256(f"drcn-callback:{TOKENS[0]}".encode()).hexdigest())
        assert headers["x-drcn-signature"] == "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        told = json.loads(body)
        assert told["id"] == job["id"] and told["state"] == "done" and "callback_key" not in told
        # a host not on the allow-list is refused before the upload is read
        status, _, answer = call(f"{server.url}/v1/jobs?callback=http://localhost:1/x", "POST", small.read_bytes())
        assert status == 400 and "--callback-allow" in json.loads(answer)["error"]
        # the disk budget: a job that would not fit is 507, nothing kept
        status, _, answer = call(f"{server.url}/v1/jobs?codec=ffv1", "POST", big.read_bytes())
        assert status == 507 and "--job-disk" in json.loads(answer)["error"], answer
        # an upload that stalls gets 408; one that stops early leaves nothing either
        for close_early in (False, True):
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            raw.sendall(f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKENS[0]}\r\n"
                        "Content-Length: 100000\r\n\r\n".encode() + small.read_bytes()[:1000])
            if close_early:
                raw.close()
            else:
                answer = ""
                while not answer.rstrip().endswith("}"):
                    got = raw.recv(4096).decode(errors="replace")
                    if not got:
                        break
                    answer += got
                raw.close()
                assert answer.startswith("HTTP/1.1 408") and "stalled" in answer, answer
        deadline = time.monotonic() + 10
        while [p for p in leftovers(jobs) if p.startswith(".incoming")] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p in leftovers(jobs) if not p.startswith(job["id"])] == [], leftovers(jobs)
        text = call(f"{server.url}/metrics")[2].decode()
        assert 'state="done"} 1.0' in text and "drcn_job_disk_bytes{" in text, text[:2000]
        segments = [line for line in text.splitlines() if line.startswith("drcn_job_segments_total{")]
        assert segments and float(segments[0].rsplit(" ", 1)[1]) >= 1
    finally:
        listener.shutdown()
        assert server.stop() == 0, server.output()


def test_two_replicas_share_a_jobs_segments_and_give_the_same_file(tmp_path, onnx):
    """With --replicas 2 the replica that does not run the job takes its free segments (each decoded from the
    keyframe before it); the replica running it joins them: the file is drcn-run's."""
    clip = tmp_path / "film.mp4"
    make_clip(clip, frames=120, size=(72, 96))
    reference = tmp_path / "ref.mkv"
    done = run(clip, "-o", reference, "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime", "--codec", "ffv1",
               "--segment", "0")
    assert done.returncode == 0, done.stderr
    jobs = tmp_path / "jobs"
    server = Server(tmp_path, onnx, jobs, "--replicas", "2")
    try:
        job = submit(server, clip, "codec=ffv1&segment=0.3&container=mkv")
        finished = wait_for(server, job["id"])
        assert finished["state"] == "done", finished
        assert finished["helped_segments"] >= 1 and finished["segments_done"] == finished["segments_total"] >= 8
        fetched = tmp_path / "fetched.mkv"
        fetched.write_bytes(call(f"{server.url}{finished['url']}/result")[2])
        assert_same_video(reference, fetched)
        assert packets(fetched, "audio") == packets(clip, "audio")
    finally:
        assert server.stop() == 0, server.output()


def test_a_replica_that_does_not_see_the_servers_job_folder_turns_jobs_off_in_one_line(tmp_path):
    """On a cluster the job folder must be shared: the server writes a probe token at start, each replica reads it
    back; a replica on a node without the folder (here: a different token) names the folder and its host."""
    from drcn.runtime.serve.jobs.store import check_probe, write_probe

    token = write_probe(tmp_path)
    assert check_probe(tmp_path, token) is None and check_probe(tmp_path, None) is None
    why = check_probe(tmp_path, "written-elsewhere")
    assert why.startswith(f"--job-dir {tmp_path}: the replica on ") and "shared folder" in why
    assert "\n" not in why and check_probe(tmp_path / "absent", token).startswith("--job-dir")
