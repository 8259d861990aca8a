"""What the benchmarks ran on, printed at the top of each (numpy/torch-free at import: bench_eval is
numpy only)."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def describe(device) -> str:
    """``device cuda (NAME)`` or ``device cpu, N CPU core(s), T torch threads``, and the torch version."""
    import torch
    where = (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f", {usable_cores()} CPU core(s), {torch.get_num_threads()} torch threads")
    return f"device {device}{where}; torch {torch.__version__}"
