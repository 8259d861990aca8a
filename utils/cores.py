"""How many CPU cores this process may use: its affinity mask (a container's or taskset's share), not
the machine's count."""
import os


def usable_cores() -> int:
    """CPU cores this process may run on (at least 1)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
