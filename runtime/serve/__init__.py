"""``drcn-serve``: the model behind an HTTP endpoint on Ray Serve (extra ``serve``).

- :mod:`.batching`: windows of concurrent requests share one backend call;
- :mod:`.protocol`: the Open Inference Protocol (KServe v2, Triton's HTTP protocol), JSON and binary tensors;
- :mod:`.model`: the served model (typed settings in, arrays and encoded images out; no HTTP);
- :mod:`.app`: the HTTP routes, limits and errors, as a Ray Serve deployment;
- :mod:`.cli`: the command.
"""
