"""Device fingerprints: what a latency number is only valid for.

A measurement or a lookup table is tied to the CPU (or GPU) model, the core count, the threads used,
the backend and the library versions; its fingerprint id (12 hex digits) keys caches and tables.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass

import torch

from searchspace.errors import NasError

BACKENDS = ("torch", "torchscript", "onnxruntime")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Fingerprint:
    """Everything that decides a latency number besides the network and its input shape."""

    cpu: str
    machine: str
    cores: int
    threads: int
    backend: str
    device: str
    gpu: str | None
    torch: str
    onnxruntime: str | None

    def id(self) -> str:
        """Stable 12-hex-digit id of this fingerprint."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {**asdict(self), "id": self.id()}


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def onnxruntime_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def check_backend(backend: str, device: str = "cpu") -> None:
    """Raise NasError (one line) for an unknown backend or an unavailable device."""
    if backend not in BACKENDS:
        raise NasError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise NasError(f"device: {device!r} is not one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise NasError(f"device cuda: CUDA is not available here (torch {torch.__version__}); use device cpu")
    if backend == "onnxruntime":
        if onnxruntime_version() is None:
            raise NasError("backend onnxruntime: the onnxruntime package is not installed")
        if device == "cuda":
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise NasError("device cuda: this onnxruntime has no CUDAExecutionProvider")


def resolve_threads(threads: int | None) -> int:
    """The thread count a measurement uses: ``threads`` or torch's default (all cores)."""
    if threads is not None and threads < 1:
        raise NasError(f"threads: {threads} must be >= 1")
    return int(threads or torch.get_num_threads())


def fingerprint(backend: str = "torch", device: str = "cpu", threads: int | None = None) -> Fingerprint:
    """The fingerprint of this machine for a backend, device and thread count (checked first)."""
    check_backend(backend, device)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    return Fingerprint(
        cpu=cpu_model(), machine=platform.machine(), cores=os.cpu_count() or 1, threads=resolve_threads(threads),
        backend=backend, device=device, gpu=gpu, torch=torch.__version__, onnxruntime=onnxruntime_version(),
    )
