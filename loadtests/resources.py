"""CPU and memory of the processes under test, sampled with psutil in a background thread.

A group is a root process and all its descendants (tritonserver and its Python backend stubs are one group).
CPU is in percent of one core; RSS is summed over the group, so pages shared between processes count once each.
The group `machine` is the whole host: CPU of all its processes, and memory in use instead of RSS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import psutil

from loadtests.records import MACHINE, ResourceSample


class ResourceSampler:
    def __init__(self, roots: Mapping[str, int], interval_s: float = 1.0) -> None:
        self.roots = dict(roots)
        self.interval_s = interval_s
        self.samples: list[ResourceSample] = []
        self._processes: dict[int, psutil.Process] = {}  # kept, so that cpu_percent measures since the last sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)

    def sample(self) -> ResourceSample:
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        for group, pid in self.roots.items():
            cpu[group], rss[group] = 0.0, 0
            for process in self._tree(pid):
                try:
                    cpu[group] += process.cpu_percent(None)
                    rss[group] += process.memory_info().rss
                except psutil.NoSuchProcess:
                    self._processes.pop(process.pid, None)
            cpu[group] = round(cpu[group], 1)
        # The whole host too: on a shared machine, other processes' CPU explains what the groups' numbers cannot.
        cpu[MACHINE] = round(psutil.cpu_percent(None) * (psutil.cpu_count() or 1), 1)
        memory = psutil.virtual_memory()
        rss[MACHINE] = memory.total - memory.available
        return ResourceSample(t=time.time(), cpu_percent=cpu, rss_bytes=rss)

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = self._processes.setdefault(pid, psutil.Process(pid))
            members = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        return [self._processes.setdefault(member.pid, member) for member in members]

    def start(self) -> None:
        self.sample()  # primes cpu_percent: its first reading of a process is always 0
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self.sample())
