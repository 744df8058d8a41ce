"""A Ray started on this machine for one command (``drcn-run --ray`` without an address, ``drcn-serve`` without
``--ray``), every process of it listening on the loopback address only.

Ray turns a node address of 127.0.0.1 into the machine's network address (``services.resolve_ip_for_localhost``)
and then binds its GCS, raylet, workers, agents and metrics exporter to it or to every interface. Its single-machine
mode (the one it uses on macOS and Windows, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps the node address on the
loopback, and with it every listening socket (checked by ``tests/runtime/test_loopback.py``). The setting is read
when Ray is imported, here and in every process Ray starts, so it goes into the environment before the import and,
where Ray is already imported, into its constants too.
"""

from __future__ import annotations

import logging
import os
import sys

SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def confine_to_loopback() -> None:
    """Make the Ray started next in this process (and its processes) a single-machine one on 127.0.0.1."""
    os.environ[SINGLE_MACHINE] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def start_local(ray, **options) -> None:
    """``ray.init`` of a local Ray on the loopback only, quiet, without the dashboard; ``options`` go to it too."""
    confine_to_loopback()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             **options)


def keep_replica_grpc_on_loopback() -> None:
    """Called in a Ray Serve replica of a local Ray: Ray Serve starts each replica's inter-deployment gRPC server on
    ``[::]:0`` (every interface) whatever the node's address (``ray.serve._private.replica``, Ray 2.60); on one
    machine that server only ever answers this machine, so it binds the loopback instead. Where Ray's code no longer
    has that helper, nothing changes (and the loopback test says so)."""
    try:
        from ray.serve._private import replica
    except ImportError:
        return
    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "drcn_loopback", False):
        return

    def on_loopback(server, address: str):
        if address.startswith("[::]:"):
            address = "127.0.0.1:" + address[len("[::]:"):]
        return original(server, address)

    on_loopback.drcn_loopback = True
    replica.add_port_to_grpc_server = on_loopback


def free_port(low: int = 20000, high: int = 32767) -> int:
    """A free TCP port on 127.0.0.1 below the kernel's ephemeral range (32768 and up on Linux), where the ports Ray's
    processes take for themselves (bind to port 0) come from: a port found free with bind(0) and handed to a server
    that starts after Ray was taken by a Ray worker once in a while."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port between {low} and {high} on 127.0.0.1")
