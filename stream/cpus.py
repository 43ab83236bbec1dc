"""CPU affinity for a worker with cores of its own (``SETTLEGUARD_PIN_CPUS``).

The worker's event loop (Faust's consuming path) is its bottleneck, and shares the
machine with its detection process, forest training and, on a small machine, the
broker. Kept on one core of its own, with the detection process on the others, it
drains faster (README, "Speed of the stream worker"). Only where the worker owns its
CPUs (a cpuset: ``docker run --cpuset-cpus``, Kubernetes' static CPU manager): two
workers pinned on one host's shared CPUs would share one core.
"""

from __future__ import annotations

import os


def pin_worker() -> set[int] | None:
    """Pin the calling thread (threads it starts later inherit) to the first CPU it may
    run on; return the others, for the detection process. None, and nothing pinned,
    with fewer than two CPUs."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    os.sched_setaffinity(0, {allowed[0]})
    return set(allowed[1:])
