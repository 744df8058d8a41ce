"""Device memory, pinned host memory and streams for the TensorRT backend, behind one small interface.

cuda-python (``cuda-bindings``, wheels on PyPI, imports without a GPU) is preferred; pycuda (source-only, so it
rarely builds) is accepted where it is installed. Neither is imported until a GPU backend is used.
"""

from __future__ import annotations

import ctypes
from typing import Protocol

import numpy as np

from drcn.errors import DrcnError
from drcn.optional import installed
from drcn.runtime.tensorrt.sidecar import GpuInfo

INSTALL = "pip install cuda-bindings (or: pip install 'drcn[tensorrt]')"


class CudaMemory(Protocol):
    name: str

    def device_alloc(self, nbytes: int) -> int: ...
    def host_alloc(self, shape: tuple[int, ...], dtype) -> np.ndarray: ...   # page-locked
    def htod_async(self, device_ptr: int, host: np.ndarray, nbytes: int) -> None: ...
    def dtoh_async(self, host: np.ndarray, device_ptr: int, nbytes: int) -> None: ...
    def synchronize(self) -> None: ...
    @property
    def stream_handle(self) -> int: ...
    def close(self) -> None: ...


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-bindings >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


class CudaPythonMemory:
    name = "cuda-python"

    def __init__(self):
        self.rt = _cudart()
        self._device, self._host = [], []
        self._stream = self._check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def _check(self, result, what: str):
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            _, text = self.rt.cudaGetErrorString(err)
            raise DrcnError(f"CUDA {what} failed: {text.decode() if isinstance(text, bytes) else text}")
        return values[0] if len(values) == 1 else values

    def device_alloc(self, nbytes: int) -> int:
        ptr = int(self._check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))
        self._device.append(ptr)
        return ptr

    def host_alloc(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = int(self._check(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        self._host.append(ptr)
        return np.frombuffer((ctypes.c_byte * nbytes).from_address(ptr), dtype=dtype).reshape(shape)

    def htod_async(self, device_ptr: int, host: np.ndarray, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(device_ptr, host.ctypes.data, nbytes, kind, self._stream), "memcpy")

    def dtoh_async(self, host: np.ndarray, device_ptr: int, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, device_ptr, nbytes, kind, self._stream), "memcpy")

    def synchronize(self) -> None:
        self._check(self.rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    @property
    def stream_handle(self) -> int:
        return int(self._stream)

    def close(self) -> None:
        for ptr in self._device:
            self.rt.cudaFree(ptr)
        for ptr in self._host:
            self.rt.cudaFreeHost(ptr)
        self._device, self._host = [], []
        if self._stream is not None:
            self.rt.cudaStreamDestroy(self._stream)
            self._stream = None


class PyCudaMemory:
    name = "pycuda"

    def __init__(self):
        import pycuda.driver as cuda

        cuda.init()
        self.cuda = cuda
        self.context = cuda.Device(0).make_context()
        self.stream = cuda.Stream()
        self._keep = []

    def device_alloc(self, nbytes: int) -> int:
        allocation = self.cuda.mem_alloc(nbytes)
        self._keep.append(allocation)
        return int(allocation)

    def host_alloc(self, shape, dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(shape, dtype)

    def htod_async(self, device_ptr: int, host: np.ndarray, nbytes: int) -> None:
        self.cuda.memcpy_htod_async(device_ptr, host.reshape(-1).view(np.uint8)[:nbytes], self.stream)

    def dtoh_async(self, host: np.ndarray, device_ptr: int, nbytes: int) -> None:
        self.cuda.memcpy_dtoh_async(host.reshape(-1).view(np.uint8)[:nbytes], device_ptr, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    @property
    def stream_handle(self) -> int:
        return self.stream.handle

    def close(self) -> None:
        self._keep = []
        if self.context is not None:
            self.context.pop()
            self.context = None


def open_cuda_memory() -> CudaMemory:
    """cuda-python if importable, else pycuda; a one-line error naming what to install otherwise."""
    try:
        _cudart()
    except ImportError:
        if not installed("pycuda"):
            raise DrcnError(f"TensorRT inference needs CUDA Python bindings: {INSTALL}") from None
        return PyCudaMemory()
    query_gpu()  # fail early and clearly without a driver or GPU
    return CudaPythonMemory()


def visible_gpu() -> GpuInfo | None:
    """GPU 0, or None without CUDA bindings, driver or GPU (never raises)."""
    try:
        return query_gpu()
    except DrcnError:
        return None


def gpu_available() -> bool:
    return visible_gpu() is not None


def query_gpu(device: int = 0) -> GpuInfo:
    """Name and compute capability of GPU ``device``; a one-line error without CUDA bindings, driver or GPU."""
    try:
        rt = _cudart()
    except ImportError:
        return _query_gpu_pycuda(device)
    err, count = rt.cudaGetDeviceCount()
    if err != rt.cudaError_t.cudaSuccess:
        _, text = rt.cudaGetErrorString(err)
        raise DrcnError(f"this needs an NVIDIA GPU and none is usable here (CUDA: "
                        f"{text.decode() if isinstance(text, bytes) else text})")
    if count == 0:
        raise DrcnError("this needs an NVIDIA GPU and none is usable here: the driver reports no device")
    err, prop = rt.cudaGetDeviceProperties(device)
    if err != rt.cudaError_t.cudaSuccess:
        raise DrcnError(f"cannot read the properties of GPU {device}")
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return GpuInfo(name=name, compute_capability=f"{prop.major}.{prop.minor}")


def _query_gpu_pycuda(device: int) -> GpuInfo:
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise DrcnError(f"this needs an NVIDIA GPU; finding one needs CUDA Python bindings: {INSTALL}") from None
    try:
        cuda.init()
        gpu = cuda.Device(device)
        major, minor = gpu.compute_capability()
        return GpuInfo(name=gpu.name(), compute_capability=f"{major}.{minor}")
    except cuda.Error as exc:
        raise DrcnError(f"no CUDA GPU is usable here (pycuda: {exc})") from None
