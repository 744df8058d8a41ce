"""TensorRT: engine building (build.py), flavours (flavour.py), the engine cache (cache.py), sidecars (sidecar.py), CUDA memory (cuda.py), the FP16 conversion (fp16.py) and drcn-trt (cli.py)."""
