"""What a ``drcn-serve`` replica allows: body and upload sizes, requests in hand, the deadline, tokens, the jobs'
folder and its bounds, the memory budget. Built from the command line by :func:`drcn.runtime.serve.cli.settings_from`
and handed to every replica (so it is a plain, picklable value)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 64 << 20     # a request body larger than this is refused (413) before it is read
    max_pending: int = 16              # requests a replica holds at once (running + waiting); more: 503
    deadline_s: float = 120.0          # a request still running after this: 504
    tokens: tuple[str, ...] = ()       # bearer tokens, any of which is accepted; none: no authentication
    job_dir: str | None = None         # the video jobs' folder (None: jobs off)
    job_probe: str | None = None       # what the server wrote into it: a replica that reads otherwise has no jobs
    max_jobs: int = 4                  # jobs queued or running per token
    max_upload: int = 4 << 30          # bytes of one job's upload
    upload_idle_s: float = 60.0        # an upload that sends nothing for this long: 408
    job_ttl_s: float = 86400.0         # a finished job's files are kept this long
    job_disk: int | None = None        # bytes the job folder may hold (None: no bound)
    callback_allow: tuple[str, ...] = ()   # hosts a job's callback may call (none: callbacks off)
    max_pixels: int | None = None      # the pixel limit in the replicas (None: DRCN_MAX_PIXELS or the default)
    memory_budget: int | None = None   # bytes per replica (None: DRCN_MEMORY_BUDGET, else a share of the machine's)
    ray_metrics_port: int | None = None   # Ray's metrics exporter on each node, appended to /metrics
    local: bool = True                 # a local Ray started by drcn-serve: every socket stays on the loopback
