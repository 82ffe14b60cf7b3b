"""One seeded map over local processes or a Dask distributed cluster.

Every replication in evalkit (study analyses, bootstrap and placebo draws, simulation
runs, cross-fitting folds) goes through :func:`map`. Each item gets its own random
stream, spawned from one :class:`numpy.random.SeedSequence` by the item's position, so
results are identical whatever the number of workers and whichever backend runs them:

- ``jobs=1`` (the default) runs in this process, one item after another;
- ``jobs=N`` runs on ``N`` local processes, this one and ``N - 1`` workers
  (``jobs=-1``: one per core);
- ``scheduler="tcp://host:8786"`` (or the ``EVALKIT_SCHEDULER`` environment variable)
  sends the items to a running Dask distributed cluster (``pip install 'evalkit[dask]'``).

Each process takes the next item as soon as it is free (dynamic scheduling): the
calling process works on items while its workers start, and a worker that starts slowly
or draws long items takes fewer of them. Which process ran an item never changes its
result (each item has its own random stream). During the map every process limits its
BLAS and OpenMP thread pools to one thread, so that ``N`` processes use ``N`` cores rather
than ``N`` times all of them. An item that ends its process (``os._exit``, a crash) ends
this one when it runs here, as with ``jobs=1``; on a worker it breaks the map with
:class:`~concurrent.futures.process.BrokenProcessPool`.

Local worker processes are kept for the next map with the same number of jobs (a
persistent pool): starting a worker and importing scikit-learn in it costs about 1-1.5 s
of CPU, which a second map (a study's next analysis, the next DML fit, a benchmark's
repeat) no longer pays. :func:`shutdown` stops them; they also stop
when the program exits. A map in a process whose ``jobs`` workers were started for
:meth:`Backend.imap` (:meth:`Backend.warm` with ``for_imap=True``: a study's fit
workers, started while its data are simulated) runs on those workers alone, so no
second pool of ``jobs - 1`` workers stays alive beside them.

Examples
--------
>>> from evalkit import parallel
>>> def draw(item, rng):
...     return item + float(rng.standard_normal())
>>> a = parallel.map(draw, [0, 10, 20], seed=7)
>>> b = parallel.map(draw, [0, 10, 20], seed=7)
>>> a == b
True
>>> parallel.map(len, ["ab", "c"])
[2, 1]
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

import numpy as np

from evalkit.core.random import SeedLike, resolve_seed
from evalkit.errors import DesignError

__all__ = [
    "JOBS_ENV",
    "SCHEDULER_ENV",
    "Backend",
    "Pending",
    "backend",
    "map",
    "shutdown",
    "spawn_seeds",
]

T = TypeVar("T")
R = TypeVar("R")

SCHEDULER_ENV = "EVALKIT_SCHEDULER"
JOBS_ENV = "EVALKIT_JOBS"
CONNECT_TIMEOUT = "20s"  # how long to wait for a named Dask scheduler


def spawn_seeds(seed: SeedLike, n: int) -> list[np.random.SeedSequence]:
    """Return ``n`` independent seed sequences spawned from ``seed``, one per item position.

    The ``i``-th sequence depends only on ``seed`` and ``i``, never on how the items are
    split among workers.

    Examples
    --------
    >>> s = spawn_seeds(1, 3)
    >>> [int(np.random.default_rng(x).integers(100)) for x in s] == [
    ...     int(np.random.default_rng(x).integers(100)) for x in spawn_seeds(1, 3)
    ... ]
    True
    """
    return np.random.SeedSequence(resolve_seed(seed)).spawn(int(n))


class Backend:
    """Where :func:`map` runs its items: in process, on local processes, or on Dask.

    Parameters
    ----------
    jobs
        Number of local processes, this one included (``N - 1`` workers); 1 runs in
        this process, -1 uses every core.
        Ignored when ``scheduler`` is given. Defaults to ``EVALKIT_JOBS`` or 1.
    scheduler
        Address of a Dask distributed scheduler (``"tcp://10.0.0.5:8786"``). Defaults to
        ``EVALKIT_SCHEDULER``; None runs locally.

    Examples
    --------
    >>> Backend(jobs=1).describe()
    'in process (1 job)'
    """

    def __init__(self, jobs: int | None = None, scheduler: str | None = None) -> None:
        self.scheduler = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV)
        if self.scheduler is not None and not str(self.scheduler).strip():
            self.scheduler = None
        self.jobs = _check_jobs(jobs if jobs is not None else os.environ.get(JOBS_ENV, 1))

    def describe(self) -> str:
        """One phrase for manifests and logs."""
        if self.scheduler:
            return f"Dask distributed cluster at {self.scheduler}"
        if self.jobs == 1:
            return "in process (1 job)"
        return f"{self.jobs} local processes"

    def map(
        self,
        fn: Callable[..., R],
        items: Iterable[T],
        *,
        seed: SeedLike | bool = False,
        progress: bool | str = False,
    ) -> list[R]:
        """Apply ``fn`` to every item, in order; see :func:`map`."""
        todo = list(items)
        streams: list[np.random.SeedSequence | None] = [None] * len(todo)
        if seed is not False:
            used = None if seed is True else seed
            streams = list(spawn_seeds(used, len(todo)))
        calls = [(i, x, s) for i, (x, s) in enumerate(zip(todo, streams, strict=True))]
        job = _Job(fn, seeded=seed is not False)
        label = progress if isinstance(progress, str) else "working"
        if not todo:
            return []
        if self.scheduler:
            return self._dask(job, calls)
        if self.jobs == 1 or len(calls) == 1:
            return [job(c) for c in _progress(calls, label, enabled=bool(progress))]
        return self._processes(job, calls, label, bool(progress))

    def imap(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        window: int = 0,
        heavy: Callable[[T], bool] | None = None,
    ) -> Iterator[R]:
        """Apply ``fn`` to every item, taking items lazily and yielding results in order.

        At most ``window`` items (default: four per worker) are submitted and not yet
        yielded, so a caller that builds large items one by one holds only that many at
        once. Unlike :meth:`map`, every item runs on one of ``jobs`` workers: this
        process is busy making the items. No random streams (give each item its own seed).

        ``heavy(item)`` marks items that need much memory: at most one of them runs at
        a time on the local workers, so peak memory holds one heavy item, not one per
        worker. A heavy item that finds another running waits while the items behind it
        go ahead (up to four windows of them), so the other workers stay busy; results
        still come in order. Ignored in process (one item at a time anyway) and on a
        Dask cluster.

        Examples
        --------
        >>> list(Backend(jobs=1).imap(len, iter(["ab", "c"])))
        [2, 1]
        """
        job = _Job(fn, seeded=False)
        calls = ((i, x, None) for i, x in enumerate(items))
        if not self.scheduler and self.jobs == 1:
            for c in calls:
                yield job(c)
            return
        size = max(1, window or 4 * self.jobs)
        if self.scheduler:
            yield from self._dask_window(job, calls, size)
            return
        import cloudpickle

        pool = _pool(self.jobs)
        task = _PayloadJob(job)
        if heavy is not None:
            yield from _one_heavy_at_a_time(pool, task, calls, size, heavy)
            return
        pending: deque[Any] = deque()
        try:
            for c in calls:
                pending.append(pool.submit(task, cloudpickle.dumps(c)))
                while len(pending) >= size:
                    yield pickle.loads(pending.popleft().result())
            while pending:
                yield pickle.loads(pending.popleft().result())
        except BaseException as exc:
            _abandon(pool, pending, exc)
            raise

    def submit(self, fn: Callable[[T], R], item: T) -> Pending[R]:
        """Start ``fn(item)`` on a local worker and return at once; ``.result()`` waits.

        For small side tasks beside a running :meth:`imap` (a study draws its report's
        figures on the fit workers while the last analyses are fitted): the task joins
        the same workers' queue behind the items already submitted. In process and on
        a Dask cluster it runs here, now (there is no local worker to share).

        Examples
        --------
        >>> Backend(jobs=1).submit(len, "abc").result()
        3
        """
        job = _Job(fn, seeded=False)
        if self.scheduler or self.jobs == 1:
            return Pending(value=job((0, item, None)))
        import cloudpickle

        pool = _pool(self.jobs)
        return Pending(pool.submit(_PayloadJob(job), cloudpickle.dumps((0, item, None))))

    def _dask_window(self, job: _Job, calls: Iterable[tuple[Any, ...]], size: int) -> Iterator[Any]:
        batch: list[tuple[Any, ...]] = []
        for c in calls:
            batch.append(c)
            if len(batch) == size:
                yield from self._dask(job, batch)
                batch = []
        if batch:
            yield from self._dask(job, batch)

    def warm(self, modules: Iterable[str] = (), *, for_imap: bool = False) -> None:
        """Start the local workers now and import ``modules`` in each, without waiting.

        The workers start up while this process does other work (a study reads and
        collapses its data meanwhile), and the next :meth:`map` finds them ready (its
        ``jobs - 1`` workers: this process takes items too), or with ``for_imap=True``
        the next :meth:`imap` (``jobs`` workers: this process makes the items). Does
        nothing in process or on a Dask cluster.

        Examples
        --------
        >>> Backend(jobs=1).warm(["evalkit.did"])  # in process: nothing to start
        """
        if self.scheduler or self.jobs == 1:
            return
        # map: this process is the N-th; imap: N workers while this process makes the items
        workers = self.jobs if for_imap else self.jobs - 1
        pool = _pool(workers)
        names = tuple(modules)
        for _ in range(workers):
            pool.submit(_import, names)

    def _processes(
        self, job: _Job, calls: list[tuple[Any, ...]], label: str, progress: bool
    ) -> list[Any]:
        with _Progress(label, len(calls), enabled=progress) as shown:
            # workers started for imap (a study's fit workers, warm while the study's
            # data are simulated) take the items on their own: no second pool of
            # jobs - 1 workers is started beside them, to stay alive as long
            warm = _warm_pool(self.jobs)
            if warm is not None:
                return _Shared(job, calls, warm, shown, caller=False).run()
            return _Shared(job, calls, _pool(self.jobs - 1), shown).run()

    def _dask(self, job: _Job, calls: list[tuple[Any, ...]]) -> list[Any]:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise DesignError(
                f"a Dask scheduler was named ({self.scheduler}) "
                "but dask.distributed is not installed",
                hint="pip install 'evalkit[dask]', or unset EVALKIT_SCHEDULER to run locally",
                column="scheduler",
            ) from exc
        try:
            client = Client(  # type: ignore[no-untyped-call]
                self.scheduler, set_as_default=False, timeout=CONNECT_TIMEOUT
            )
        except OSError as exc:
            raise DesignError(
                f"cannot reach the Dask scheduler at {self.scheduler}: {exc}",
                hint="start it with `dask scheduler` and workers with `dask worker ADDRESS`, "
                "or leave --scheduler/EVALKIT_SCHEDULER unset to run locally",
                column="scheduler",
            ) from exc
        try:
            futures = client.map(job, calls, pure=False)
            return list(client.gather(futures))  # type: ignore[no-untyped-call]
        finally:
            client.close()  # type: ignore[no-untyped-call]


def map(
    fn: Callable[..., R],
    items: Iterable[T],
    *,
    seed: SeedLike | bool = False,
    jobs: int | None = None,
    scheduler: str | None = None,
    progress: bool | str = False,
) -> list[R]:
    """Apply ``fn`` to every item and return the results in item order.

    Parameters
    ----------
    fn
        A function (sent to workers by cloudpickle, so one defined in a notebook works).
        Called as ``fn(item)``, or as
        ``fn(item, rng)`` with a :class:`numpy.random.Generator` when ``seed`` is given.
    items
        The work items (picklable).
    seed
        An integer (or None for fresh entropy) to give each item its own random stream,
        spawned by position from one seed, so results do not depend on ``jobs`` or the
        backend. False (the default) passes no generator.
    jobs
        Local processes, this one included (1: only this one; -1: one per core).
    scheduler
        A Dask distributed scheduler address; overrides ``jobs``.
    progress
        Show a progress bar on standard error (a string is used as its label).

    Returns
    -------
    list
        ``[fn(item, ...) for item in items]``, in order.

    Raises
    ------
    evalkit.EvalkitError
        For a bad ``jobs`` value or an unreachable scheduler. An exception raised by
        ``fn`` propagates with a note naming the item's position.
    """
    return Backend(jobs=jobs, scheduler=scheduler).map(fn, items, seed=seed, progress=progress)


_POOLS: dict[tuple[int, int], ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ProcessPoolExecutor:
    """Return this process' pool of ``workers`` local processes, started on first use."""
    key = (os.getpid(), workers)  # a forked child never uses its parent's pool
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is not None and getattr(pool, "_broken", False):
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
        if pool is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=_limit_threads
            )
            _POOLS[key] = pool
        return pool


def _warm_pool(workers: int) -> ProcessPoolExecutor | None:
    """Return this process' pool of ``workers`` workers if it runs, else None."""
    with _POOLS_LOCK:
        pool = _POOLS.get((os.getpid(), workers))
    return None if pool is None or getattr(pool, "_broken", False) else pool


def _discard(pool: ProcessPoolExecutor) -> None:
    with _POOLS_LOCK:
        for key, value in list(_POOLS.items()):
            if value is pool:
                del _POOLS[key]
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    """Stop the local worker processes kept for later maps (they also stop at exit).

    Examples
    --------
    >>> from evalkit import parallel
    >>> parallel.shutdown()
    """
    with _POOLS_LOCK:
        pools = [p for (pid, _), p in _POOLS.items() if pid == os.getpid()]
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown)


def backend(jobs: int | None = None, scheduler: str | None = None) -> Backend:
    """Return the :class:`Backend` that :func:`map` would use with these settings."""
    return Backend(jobs=jobs, scheduler=scheduler)


class _Job:
    """A picklable wrapper that calls ``fn`` with the item's own generator.

    ``fn`` travels by cloudpickle, so functions
    defined in a notebook or a script's ``__main__`` run on worker processes too.
    """

    def __init__(self, fn: Callable[..., Any], seeded: bool) -> None:
        self.fn = fn
        self.seeded = seeded

    def __getstate__(self) -> dict[str, Any]:
        import cloudpickle

        return {"fn": cloudpickle.dumps(self.fn), "seeded": self.seeded}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.fn = pickle.loads(state["fn"])
        self.seeded = state["seeded"]

    def __call__(self, call: tuple[Any, ...]) -> Any:
        position, item, stream = call
        try:
            if self.seeded:
                return self.fn(item, np.random.default_rng(stream))
            return self.fn(item)
        except Exception as exc:
            exc.add_note(f"(evalkit.parallel: raised by item {position}: {item!r:.200})")
            raise


class Pending(Generic[R]):
    """The result of :meth:`Backend.submit`: a worker's future, or a value computed here."""

    def __init__(self, future: Future[bytes] | None = None, *, value: Any = None) -> None:
        self._future = future
        self._value = value

    def done(self) -> bool:
        """Say whether :meth:`result` would return without waiting."""
        return self._future is None or self._future.done()

    def result(self) -> R:
        """Wait for the task and return its result (its exception is raised here)."""
        if self._future is not None:
            self._value, self._future = pickle.loads(self._future.result()), None
        return self._value


class _PayloadJob:
    """Run a :class:`_Job` on a cloudpickled call and return its cloudpickled result."""

    def __init__(self, job: _Job) -> None:
        self.job = job

    def __call__(self, payload: bytes) -> bytes:
        import cloudpickle

        return cloudpickle.dumps(self.job(pickle.loads(payload)))


class _Shared:
    """One map shared by this process and the pool's workers, item by item.

    Whoever is free claims the next item: a worker gets a new item as soon as it returns
    one (a feeder thread keeps exactly one item outstanding per worker), and this process
    runs items itself between checks, so it works while fresh workers start (about 1.5 s
    of imports each) and a slow worker takes fewer items. The results go to their item's
    position; an error stops the claims and the first failed item's exception is raised.
    With ``caller=False`` only the workers take items (this process waits).
    """

    def __init__(
        self,
        job: _Job,
        calls: list[tuple[Any, ...]],
        pool: ProcessPoolExecutor,
        shown: _Progress,
        caller: bool = True,
    ) -> None:
        self.caller = caller
        self.job = job
        self.calls = calls
        self.pool = pool
        self.shown = shown
        self.results: list[Any] = [None] * len(calls)
        self.errors: dict[int, BaseException] = {}
        self.cursor = 0
        self.lock = threading.Lock()
        self.stop: Future[None] = Future()

    def claim(self) -> int | None:
        """Return the next unclaimed position (None when all are taken or one failed)."""
        with self.lock:
            if self.errors or self.cursor >= len(self.calls):
                return None
            self.cursor += 1
            return self.cursor - 1

    def fail(self, position: int, exc: BaseException) -> None:
        with self.lock:
            self.errors[position] = exc

    def run(self) -> list[Any]:
        feeder = threading.Thread(target=self.feed, name="evalkit-parallel", daemon=True)
        feeder.start()
        try:
            with _one_thread():
                while self.caller and (i := self.claim()) is not None:
                    try:
                        self.results[i] = self.job(self.calls[i])
                    except Exception as exc:
                        self.fail(i, exc)
                        break
                    self.shown.advance()
        except BaseException:  # an interrupt: stop the workers too
            self.stop.set_result(None)
            feeder.join()
            _discard(self.pool)
            raise
        if self.errors:  # raise now; a worker's running item finishes unseen
            self.stop.set_result(None)
        feeder.join()
        if self.errors:
            first = self.errors[min(self.errors)]
            if isinstance(first, BrokenProcessPool):
                _discard(self.pool)  # a worker died: the next map starts fresh ones
            raise first
        return self.results

    def feed(self) -> None:
        """Feeder thread: keep one item outstanding on each worker until none is left."""
        import cloudpickle

        # items and results travel by cloudpickle too (they may hold mapping proxies,
        # lambdas or other objects that the standard pickle refuses)
        run = _PayloadJob(self.job)
        slots = max(1, int(getattr(self.pool, "_max_workers", 1)))
        pending: dict[Future[bytes], int] = {}
        while True:
            while len(pending) < slots and not self.stop.done():
                i = self.claim()
                if i is None:
                    break
                try:
                    pending[self.pool.submit(run, cloudpickle.dumps(self.calls[i]))] = i
                except Exception as exc:  # an unpicklable item, a broken pool
                    self.fail(i, exc)
            if not pending:
                return
            waiting: list[Future[Any]] = [*pending, self.stop]
            wait(waiting, return_when=FIRST_COMPLETED)
            if self.stop.done():
                for future in pending:
                    future.cancel()
                return
            for future in [f for f in pending if f.done()]:
                i = pending.pop(future)
                try:
                    self.results[i] = pickle.loads(future.result())
                except Exception as exc:
                    self.fail(i, exc)
                else:
                    self.shown.advance()


class _Progress:
    """A progress bar on standard error that any thread may advance (or nothing)."""

    def __init__(self, label: str, total: int, *, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress

            console = Console(stderr=True)
            self.bar = Progress(console=console, transient=not sys.stderr.isatty())
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total)
        return self

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _one_thread() -> Any:
    """Context: this process' BLAS/OpenMP pools limited to one thread while it shares a map."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def _import(modules: tuple[str, ...]) -> None:
    """Worker task of :meth:`Backend.warm`: import ``modules`` (a failure is left to the map)."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - the map that needs it reports it
            pass


def _check_jobs(jobs: Any) -> int:
    try:
        value = int(jobs)
    except (TypeError, ValueError):
        value = 0
    if value == -1:
        return max(1, os.cpu_count() or 1)
    if value < 1 or isinstance(jobs, bool):
        raise DesignError(
            f"jobs must be a positive whole number or -1 (every core), got {jobs!r}",
            hint="e.g. jobs=2, --jobs 2 or EVALKIT_JOBS=2",
            column="jobs",
        )
    return value


def _limit_threads() -> None:
    """Worker initializer: one BLAS/OpenMP thread per worker process."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def _progress(
    iterable: Iterable[Any], label: str, *, enabled: bool, total: int | None = None
) -> Iterable[Any]:
    if not enabled:
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import Progress

    if total is None and isinstance(iterable, Sequence):
        total = len(iterable)
    console = Console(stderr=True)
    with Progress(console=console, transient=not sys.stderr.isatty()) as bar:
        task = bar.add_task(label, total=total)
        for value in iterable:
            yield value
            bar.advance(task)


def _one_heavy_at_a_time(
    pool: ProcessPoolExecutor,
    task: Callable[[bytes], bytes],
    calls: Iterator[tuple[int, Any, None]],
    size: int,
    heavy: Callable[[Any], bool],
) -> Iterator[Any]:
    """:meth:`Backend.imap` on local workers with at most one heavy item running.

    Heavy items wait in order for the one running to finish; light items behind them
    are submitted meanwhile (up to ``4 * size`` items taken and not yet yielded) and
    their results are held until the items before them have been yielded.
    """
    import cloudpickle

    pending: dict[int, Future[bytes]] = {}
    waiting: deque[tuple[int, Any, None]] = deque()
    running: Future[bytes] | None = None
    following = 0  # the index of the next result to yield
    exhausted = False
    try:
        while True:
            if running is not None and running.done():
                running = None
            if running is None and waiting:
                c = waiting.popleft()
                running = pending[c[0]] = pool.submit(task, cloudpickle.dumps(c))
            while following in pending and pending[following].done():
                yield pickle.loads(pending.pop(following).result())
                following += 1
            taken = len(pending) + len(waiting)
            if exhausted and not taken:
                return
            if not exhausted and taken < (4 * size if waiting else size):
                item = next(calls, None)
                if item is None:
                    exhausted = True
                elif not heavy(item[1]):
                    pending[item[0]] = pool.submit(task, cloudpickle.dumps(item))
                elif running is not None or waiting:
                    waiting.append(item)
                else:
                    running = pending[item[0]] = pool.submit(task, cloudpickle.dumps(item))
                continue
            wait([f for f in pending.values() if not f.done()], return_when=FIRST_COMPLETED)
    except BaseException as exc:
        _abandon(pool, pending.values(), exc)
        raise


def _abandon(pool: ProcessPoolExecutor, pending: Iterable[Future[Any]], exc: BaseException) -> None:
    """Cancel a stream's pending items; drop the pool if it broke or was interrupted."""
    for f in pending:
        f.cancel()
    if not isinstance(exc, Exception) or isinstance(exc, BrokenProcessPool):
        _discard(pool)
