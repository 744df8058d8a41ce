"""drcn.benchmarks: quality (PSNR/SSIM), latency, recursion sweeps and their tables and plots; ``drcn-bench``."""
