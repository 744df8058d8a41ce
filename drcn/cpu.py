"""What this CPU can do, read from the OS (no torch): used to pick bf16 only where it is native."""

from __future__ import annotations

import functools
import platform
from pathlib import Path


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU in /proc/cpuinfo (empty where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_native_bf16() -> bool:
    """True where bf16 matrix arithmetic runs in hardware (AVX-512 BF16 or AMX on x86, BF16 on Arm).

    Elsewhere bf16 is emulated and slower than fp32, so callers fall back to fp32.
    """
    flags = cpu_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """The CPU's name and the features drcn's choices depend on, e.g. 'AMD EPYC (AVX-512 BF16, VNNI)'."""
    flags = cpu_flags()
    features = [label for label, names in (("AMX", {"amx_bf16", "amx_int8"}), ("AVX-512 BF16", {"avx512_bf16"}),
                                           ("VNNI", {"avx512_vnni", "avx_vnni"}), ("AVX-512", {"avx512f"}),
                                           ("AVX2", {"avx2"})) if flags & names]
    return f"{cpu_name()} ({', '.join(features) or 'no vector extensions reported'})"
