"""Where the runs of a sweep execute: this process, a local process pool, or a Dask cluster.

Each executor takes chunks of tasks and yields each chunk's rows as soon as that chunk is done,
in completion order.  Tasks go in small chunks rather than one by one because a run takes
~10 ms, the same order as a Dask task's scheduling overhead; a chunk of a few dozen keeps
overhead small and still streams rows several times a second.

The pool uses the ``forkserver`` start method with the worker module preloaded: workers start
from a clean process that imported lazyaccept once (fork from a client that may already run a
progress-bar thread is unsafe), and no worker starts a new interpreter per run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from ... import __version__
from ...base.errors import ConfigError
from .profiles import ProfileText
from .worker import Task, ignore_interrupts, run_chunk, worker_version

Rows = list[dict[str, Any]]

#: The module a pool's fork server imports once, so each worker starts with it loaded.
_WORKER_MODULE = "lazyaccept.sim.fleet.worker"


class Executor:
    """Runs chunks; a context manager that frees its workers on exit."""

    #: Processes running tasks at once.
    workers: int = 1
    #: How the executor is described to the user ("2 local processes").
    label: str = "this process"

    def run(self, chunks: list[list[Task]], profiles: Mapping[str, ProfileText]) -> Iterator[Rows]:
        raise NotImplementedError

    def close(self) -> None:
        """Free the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class InlineExecutor(Executor):
    """Runs every chunk in this process, one after the other (``--jobs 1``; tests, debugging)."""

    def run(self, chunks: list[list[Task]], profiles: Mapping[str, ProfileText]) -> Iterator[Rows]:
        for chunk in chunks:
            yield run_chunk(chunk, profiles)


class PoolExecutor(Executor):
    """A local process pool of ``jobs`` workers."""

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, not {jobs}")
        self.workers = jobs
        self.label = f"{jobs} local process{'es' if jobs > 1 else ''}"
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([_WORKER_MODULE])
        self._pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=ignore_interrupts,
                                         initargs=(os.getpid(),))

    def run(self, chunks: list[list[Task]], profiles: Mapping[str, ProfileText]) -> Iterator[Rows]:
        pending: set[Future[Rows]] = {self._pool.submit(run_chunk, c, dict(profiles)) for c in chunks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in pending:  # interrupted, or a run raised: what has not started never will
                fut.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is not None:
            # Interrupted (Ctrl-C, SIGTERM) or failed: the chunks running now are not waited for; their
            # rows would be lost anyway, and --resume runs them again.
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.terminate()
        self.close()


class DaskExecutor(Executor):
    """A Dask cluster: ``"local"`` starts a :class:`distributed.LocalCluster` of ``jobs``
    single-threaded worker processes; anything else is a scheduler address to connect to."""

    def __init__(self, address: str, jobs: int) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--dask needs Dask's distributed scheduler: pip install 'lazyaccept[dask]'") from None
        self._cluster: Any = None
        if address == "local":
            if jobs < 1:
                raise ConfigError(f"--jobs must be at least 1, not {jobs}")
            # One thread per worker: the model is pure Python and holds the GIL.  Workers start with
            # Ctrl-C ignored (a new interpreter keeps an ignored SIGINT ignored): the terminal sends it
            # to the whole process group, and it is the client's to handle, by cancelling.
            with _sigint_ignored():
                self._cluster = LocalCluster(
                    n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(address, timeout="15s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(f"--dask {address}: cannot reach the scheduler: {exc}") from None
        self._check_workers(address)
        self.workers = max(1, sum(w.get("nthreads", 1) for w in self._client.scheduler_info()["workers"].values()))
        where = "a local Dask cluster" if address == "local" else f"Dask at {address}"
        self.label = f"{where} ({self.workers} worker thread{'s' if self.workers > 1 else ''})"

    def _check_workers(self, address: str) -> None:
        """Every worker must import lazyaccept, at the client's version, before any run."""
        try:
            versions = self._client.run(worker_version)
        except Exception as exc:  # unpickling the function fails where lazyaccept is not installed
            self.close()
            raise ConfigError(f"--dask {address}: the workers cannot run lazyaccept ({exc})") from None
        if not versions:
            self.close()
            raise ConfigError(f"--dask {address}: the cluster has no workers")
        wrong = {w: v for w, v in versions.items() if v != __version__}
        if wrong:
            self.close()
            worker, version = next(iter(wrong.items()))
            raise ConfigError(f"--dask {address}: worker {worker} runs lazyaccept {version}, this is {__version__}")

    def run(self, chunks: list[list[Task]], profiles: Mapping[str, ProfileText]) -> Iterator[Rows]:
        from distributed import as_completed

        # The profile texts go to every worker once, not with every chunk.
        shared = self._client.scatter([dict(profiles)], broadcast=True)[0]
        futures = self._client.map(run_chunk, chunks, profiles=shared, pure=False)
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BaseException:  # interrupted, or a run raised: stop the rest on the cluster
            self._client.cancel(futures)
            raise

    def close(self) -> None:
        client, cluster = getattr(self, "_client", None), self._cluster
        self._cluster = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change signal handlers; nothing to inherit then
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def make_executor(jobs: int | None, dask: str | None) -> Executor:
    """The executor the command line asks for: ``--dask`` wins; ``--jobs 1`` runs in this process."""
    n = jobs if jobs is not None else (os.cpu_count() or 1)
    if dask is not None:
        return DaskExecutor(dask, n)
    return InlineExecutor() if n == 1 else PoolExecutor(n)
