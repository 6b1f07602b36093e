"""Decode files one by one, each in a fresh fork of this process, and report for each its outcome, the peak
resident memory it added and the time it took (a decode that runs past the timeout is killed: `hang`).

    python -m tests.fuzz.decode_peak MAX_MEGAPIXELS TIMEOUT_S FILE... -> one JSON object per line

A fork per file, because a process's peak RSS (ru_maxrss) only grows: measured in one process, a small file after
a large one would look large. The fork starts with the imports done, so what it adds is the decode's own."""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

from replate.errors import ReplateError
from replate.imageio import ImageLimits, decode_image


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _decode(data: bytes, limits: ImageLimits) -> dict[str, object]:
    before_mib = _peak_rss_mib()
    started = time.perf_counter()
    try:
        decoded = decode_image(data, limits)
        outcome = f"decoded {decoded.rgb.shape[1]}x{decoded.rgb.shape[0]}"
    except ReplateError as error:
        outcome = error.code
    except Exception as exc:  # what the caller tests for: anything but a coded refusal is a crash
        outcome = f"crash {type(exc).__name__}: {exc}"
    return {"outcome": outcome, "seconds": time.perf_counter() - started, "peak_mib": _peak_rss_mib() - before_mib}


def measure(path: Path, limits: ImageLimits, timeout_s: float) -> dict[str, object]:
    data = path.read_bytes()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        os.write(writer, json.dumps(_decode(data, limits)).encode())
        os._exit(0)
    os.close(writer)
    deadline = time.monotonic() + timeout_s
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(reader)
            return {"name": path.name, "outcome": "hang", "seconds": timeout_s, "peak_mib": 0.0}
        time.sleep(0.01)
    with os.fdopen(reader, "rb") as pipe:
        report = pipe.read()
    return {"name": path.name, **json.loads(report or b'{"outcome": "died", "seconds": 0, "peak_mib": 0}')}


def main(arguments: list[str]) -> None:
    limits = ImageLimits(max_megapixels=float(arguments[0]))
    timeout_s = float(arguments[1])
    for name in arguments[2:]:
        print(json.dumps(measure(Path(name), limits, timeout_s)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
