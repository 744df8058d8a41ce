"""Where a result was measured, written by the benchmark itself into every result file it makes: the CPU's model,
its ISA level (what drcn's choices depend on: AVX2, AVX-512 VNNI, bf16, AMX), cores, memory, the versions of the
libraries that ran, the date and the command. The results index is built from these headers
(:func:`read_header`), never typed by hand."""

from __future__ import annotations

import datetime
import os
import re
import sys
from importlib import metadata
from pathlib import Path

MARK = "<!-- measured-on -->"
LIBRARIES = ("drcn", "openvino", "onnxruntime", "torch", "av", "ray", "tensorrt_rtx")


def isa_level(flags: frozenset[str]) -> str:
    """The highest of AMX, AVX-512 + VNNI + BF16, AVX-512 + VNNI, AVX-512, AVX2 the CPU reports (its ``flags``)."""
    if {"amx_bf16", "amx_int8"} & flags:
        return "AMX"
    if "avx512f" in flags and "avx512_vnni" in flags:
        return "AVX-512 VNNI + BF16" if "avx512_bf16" in flags else "AVX-512 VNNI"
    if "avx512f" in flags:
        return "AVX-512"
    return "AVX2" if "avx2" in flags else "below AVX2"


def cpu_model_numbers() -> str:
    """"family F model M" from /proc/cpuinfo (which names one generation where the model name does not, e.g. a
    cloud's "AMD EPYC"); "" where it is not there."""
    numbers = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("cpu family", "model") and key.strip() not in numbers:
                numbers[key.strip()] = value.strip()
            if len(numbers) == 2:
                break
    except OSError:
        return ""
    return f"family {numbers['cpu family']} model {numbers['model']}" if len(numbers) == 2 else ""


def facts() -> dict:
    """This machine now: {cpu, isa, cores, memory_gib, libraries: {name: version}, date, python}."""
    from drcn.cpu import cpu_flags, cpu_name
    from drcn.memory import machine_memory

    libraries = {}
    for name in LIBRARIES:
        try:
            libraries[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            pass
    total = machine_memory()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    numbers = cpu_model_numbers()
    return {"cpu": cpu_name() + (f" ({numbers})" if numbers else ""), "isa": isa_level(cpu_flags()), "cores": cores,
            "memory_gib": round(total / (1 << 30)) if total else None, "libraries": libraries,
            "python": ".".join(map(str, sys.version_info[:3])), "date": datetime.date.today().isoformat()}


def command_line(argv: list[str]) -> str:
    """``drcn-bench`` and its arguments as run, each absolute path as its file name."""
    from drcn.benchmarks.cli import without_paths_in

    return without_paths_in(" ".join(["drcn-bench", *argv]))


def header(machine: dict, command: str) -> str:
    """The Markdown paragraph a result file opens with."""
    versions = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items())
    memory = f", {machine['memory_gib']} GiB" if machine.get("memory_gib") else ""
    return (f"{MARK}\nMeasured on {machine['cpu']}, {machine['isa']}, {machine['cores']} cores{memory}; "
            f"Python {machine['python']}, {versions}; {machine['date']}.  \nCommand: `{command}`\n\n")


_HEADER = re.compile(re.escape(MARK) + r"\nMeasured on (?P<cpu>.*), (?P<isa>AMX|AVX[^,]*|below AVX2), "
                     r"(?P<cores>\d+) cores[^;]*; (?P<versions>[^\n]*); (?P<date>\d{4}-\d\d-\d\d)\.  \nCommand: `(?P<command>[^`]*)`")


def read_header(path: Path) -> dict | None:
    """{cpu, isa, cores, date, command} of a result file's header, None for a file without one."""
    match = _HEADER.search(path.read_text(errors="replace")[:4000])
    return match.groupdict() if match else None
