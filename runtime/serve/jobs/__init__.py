"""Video jobs of ``drcn-serve``: a film uploaded to ``POST /v1/jobs``, upscaled in the background by the segmented video
code of ``drcn-run`` (:mod:`drcn.runtime.media.video_job`), watched and fetched over HTTP.

- :mod:`.options`: the query parameters a job takes, checked as ``drcn-run`` checks its options;
- :mod:`.store`: the job folder on disk, which is the truth (input, record, parts, result) and outlives the server;
- :mod:`.runner`: the thread of a replica that picks up unfinished jobs and runs them, images first;
- :mod:`.signing`: result links that carry their own expiring token (a player cannot send a bearer header).
"""
