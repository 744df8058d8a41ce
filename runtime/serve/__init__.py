"""``drcn-serve``: the model behind an HTTP endpoint on Ray Serve (extra ``serve``).

- :mod:`.batching`: one scheduler per replica: windows of concurrent requests share backend calls, the
  least-served request first, given-up work dropped;
- :mod:`.metrics`: the Prometheus series of a replica;
- :mod:`.protocol`: the Open Inference Protocol (KServe v2, Triton's HTTP protocol), JSON and binary tensors;
- :mod:`.model`: the served model (typed settings in, arrays and encoded images out; no HTTP);
- :mod:`.app`: the HTTP routes, limits and errors, as a Ray Serve deployment;
- :mod:`.cli`: the command.
"""
