"""What drcn-run reads and writes: jobs and frames (jobs.py), video (video.py, video_job.py), the host path's colour and bicubic work (colour.py)."""
