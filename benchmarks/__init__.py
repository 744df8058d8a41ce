"""drcn.benchmarks: quality (PSNR/SSIM) and, later, latency measurements; the ``drcn-bench`` command."""
