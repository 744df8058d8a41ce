"""Importing TensorRT with a one-line error when it is absent, and its logger."""

from __future__ import annotations

from drcn.optional import require

INSTALL = ("pip install tensorrt (from NVIDIA's package index; needs an NVIDIA GPU and driver) "
           "and pip install cuda-bindings")


def import_tensorrt():
    return require("tensorrt", "the TensorRT backend", INSTALL)


def make_logger(trt, verbose: bool = False):
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
