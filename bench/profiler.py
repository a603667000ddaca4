"""Inside a measurement process: a deterministic profiler of wrapped functions (inclusive and self time per
call path) and an RSS sampler that charges memory to the stage running (see :func:`bench.harness.child`)."""

from __future__ import annotations

import resource
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator


class Sampler:
    """Polls this process's RSS (and its children's) and charges each sample to the current stage."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.stage_peaks: dict[tuple[str, ...], int] = {}
        self.stack: list[tuple[str, ...]] = []  # shared with the Profiler (same thread order is fine)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def rss(self) -> int:
        total = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except Exception:  # noqa: BLE001 - a child that just ended
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        rss = self.rss()
        self.peak = max(self.peak, rss)
        for path in list(self.stack):  # a stage's peak includes its nested stages' samples
            if rss > self.stage_peaks.get(path, 0):
                self.stage_peaks[path] = rss

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class Profiler:
    """Inclusive and self time per call path of wrapped functions (a tiny, deterministic profiler)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.stats: dict[tuple[str, ...], dict[str, float]] = {}
        self._frames: list[list[Any]] = []  # [path, start, time in nested stages]
        self._undo: list[Callable[[], None]] = []
        self.seconds: float | None = None
        self.cpu_seconds: float | None = None

    @contextmanager
    def timed(self) -> Iterator[None]:
        """The measured region: setup before it (imports, fresh dirs, version checks) is not timed."""
        def cpu() -> float:  # this process's, and that of the child processes it waited for (commands)
            return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                         resource.getrusage(resource.RUSAGE_CHILDREN)))

        before = cpu()
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds = time.perf_counter() - started
            self.cpu_seconds = cpu() - before

    @contextmanager
    def stage(self, label: str) -> Iterator[None]:
        parent = self._frames[-1][0] if self._frames else ()
        path = (*parent, label)
        frame = [path, time.perf_counter(), 0.0]
        self._frames.append(frame)
        self.sampler.stack.append(path)
        self.sampler.sample()
        try:
            yield
        finally:
            self.sampler.sample()
            self.sampler.stack.pop()
            self._frames.pop()
            elapsed = time.perf_counter() - frame[1]
            stat = self.stats.setdefault(path, {"calls": 0, "total": 0.0, "self": 0.0})
            stat["calls"] += 1
            stat["total"] += elapsed
            stat["self"] += elapsed - frame[2]
            if self._frames:
                self._frames[-1][2] += elapsed

    def record(self, path: tuple[str, ...], seconds: float) -> None:
        """A stage timed elsewhere (another process: a Dagster run and its steps), under ``path``; its
        time is taken from its parent's self time."""
        stat = self.stats.setdefault(path, {"calls": 0, "total": 0.0, "self": 0.0})
        stat["calls"] += 1
        stat["total"] += seconds
        stat["self"] += seconds
        if path[:-1] in self.stats:
            self.stats[path[:-1]]["self"] -= seconds

    def wrap(self, owner: Any, attribute: str, label: str | Callable[..., str] | None = None) -> None:
        original = getattr(owner, attribute)
        profiler = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = label(*args, **kwargs) if callable(label) else (label or attribute)
            with profiler.stage(name):
                return original(*args, **kwargs)

        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(owner, attribute, wrapper)
        self._undo.append(lambda: setattr(owner, attribute, original))

    def rows(self) -> list[dict[str, Any]]:
        def order(path: tuple[str, ...]) -> tuple:
            # depth-first, siblings by total time descending
            keys = []
            for depth in range(1, len(path) + 1):
                prefix = path[:depth]
                keys.append((-self.stats[prefix]["total"], prefix[-1]))
            return tuple(keys)

        return [
            {"path": list(path), "calls": int(s["calls"]), "total": round(s["total"], 4),
             "self": round(s["self"], 4), "peak_rss": self.sampler.stage_peaks.get(path)}
            for path, s in sorted(self.stats.items(), key=lambda item: order(item[0]))
        ]

