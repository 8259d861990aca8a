"""What the benchmarks ran on, printed at the top of each (numpy/torch-free at import: bench_eval is
numpy only)."""
from __future__ import annotations

from utils.cores import usable_cores


def describe(device) -> str:
    """``device cuda (NAME)`` or ``device cpu, N CPU core(s), T torch threads``, and the torch version."""
    import torch
    where = (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f", {usable_cores()} CPU core(s), {torch.get_num_threads()} torch threads")
    return f"device {device}{where}; torch {torch.__version__}"


def calibration_step(repeats: int = 12) -> float:
    """This machine's calibration step in seconds: the median time of a resnet18 training step on 32
    frames of 32x32 px on the CPU (forward, backward, SGD with momentum; torch's default threads), the
    unit in which the README states CPU budgets.  Needs torch and torchvision (imported here only)."""
    import statistics
    import time

    import torch
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=157)
    x = torch.randn(32, 3, 32, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(repeats + 3):
        t = time.perf_counter()
        model(x).sum().backward()
        opt.step()
        opt.zero_grad()
        if i >= 3:  # the first steps warm up the allocator and the kernels
            times.append(time.perf_counter() - t)
    return statistics.median(times)
