"""evalkit.parallel: one seeded map, identical for any number of workers and either backend."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit import parallel
from evalkit.errors import DesignError


def _draws(item: int, rng: np.random.Generator) -> tuple[int, float]:
    return item, float(rng.standard_normal(3).sum())


def _square(x: int) -> int:
    return x * x


def _boom(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


ITEMS = list(range(23))


def test_unseeded_map_keeps_order():
    assert parallel.map(_square, ITEMS) == [x * x for x in ITEMS]
    assert parallel.map(_square, []) == []


def test_seeded_results_do_not_depend_on_workers():
    one = parallel.map(_draws, ITEMS, seed=11, jobs=1)
    two = parallel.map(_draws, ITEMS, seed=11, jobs=2)
    assert one == two
    assert [i for i, _ in one] == ITEMS
    # each item has its own stream: not all draws equal, and another seed differs
    assert len({v for _, v in one}) == len(ITEMS)
    assert parallel.map(_draws, ITEMS, seed=12) != one


def test_item_streams_are_positional():
    # the stream of item i is spawned from the seed by position: a prefix of the items
    # gets the same draws
    full = parallel.map(_draws, ITEMS, seed=5)
    head = parallel.map(_draws, ITEMS[:4], seed=5)
    assert full[:4] == head
    expected = float(np.random.default_rng(parallel.spawn_seeds(5, 23)[7]).standard_normal(3).sum())
    assert full[7][1] == expected


def test_errors_name_the_item():
    with pytest.raises(ValueError, match="three") as info:
        parallel.map(_boom, [1, 2, 3, 4])
    assert any("item 2" in n for n in getattr(info.value, "__notes__", []))


@pytest.mark.parametrize("jobs", [0, -2, "two", True])
def test_bad_jobs(jobs):
    with pytest.raises(DesignError, match="jobs"):
        parallel.map(_square, [1], jobs=jobs)


def test_environment_sets_jobs(monkeypatch):
    monkeypatch.setenv(parallel.JOBS_ENV, "2")
    assert parallel.backend().jobs == 2
    assert parallel.backend().describe() == "2 local processes"


def test_unreachable_scheduler_is_a_clear_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(DesignError, match="cannot reach the Dask scheduler"):
        parallel.map(_square, [1], scheduler="tcp://127.0.0.1:9")


def test_dask_cluster_gives_identical_results():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
    ):
        on_dask = parallel.map(_draws, ITEMS, seed=11, scheduler=cluster.scheduler_address)
    assert on_dask == parallel.map(_draws, ITEMS, seed=11)


def _proxy_item(item):
    import types

    return types.MappingProxyType({"x": item["x"] * 2})


def test_items_and_results_that_plain_pickle_refuses_travel():
    import types

    items = [types.MappingProxyType({"x": i}) for i in range(3)]
    out = parallel.map(_proxy_item, items, jobs=2)
    assert [dict(o) for o in out] == [{"x": 0}, {"x": 2}, {"x": 4}]


def _pid(x: int) -> int:
    import os

    return os.getpid()


def _die(x: int) -> int:
    import multiprocessing
    import os

    if x == 1 and multiprocessing.parent_process() is not None:  # only a worker dies
        os._exit(3)
    return x


def test_workers_are_kept_for_the_next_map_until_shutdown():
    import os

    me = {os.getpid()}
    first = set(parallel.map(_pid, range(8), jobs=3)) - me
    second = set(parallel.map(_pid, range(8), jobs=3)) - me
    # jobs=3: this process and at most two workers, kept for the second map
    assert first and first & second and len(first | second) <= 2
    parallel.shutdown()
    third = set(parallel.map(_pid, range(8), jobs=3)) - me
    assert third and not third & first  # fresh workers after shutdown
    parallel.shutdown()


def test_a_dead_worker_breaks_one_map_only():
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool):
        parallel.map(_die, [1, 1, 1, 1], jobs=2)  # the worker's first item kills it
    assert parallel.map(_square, [1, 2, 3], jobs=2) == [1, 4, 9]
    parallel.shutdown()


def test_an_item_error_leaves_the_workers_usable():
    before = set(parallel.map(_pid, range(4), jobs=2))
    for items in ([3, 3, 3, 3], [1, 2, 3, 4]):  # raised by the worker, by either process
        with pytest.raises(ValueError, match="three"):
            parallel.map(_boom, items, jobs=2)
    assert set(parallel.map(_pid, range(4), jobs=2)) <= before
    parallel.shutdown()


def _loaded(name: str) -> bool:
    import sys

    return name in sys.modules


def test_warm_starts_the_workers_with_the_modules_imported():
    parallel.shutdown()
    parallel.backend(jobs=2).warm(["evalkit.did.twfe"])
    assert any(parallel.map(_loaded, ["evalkit.did.twfe"] * 4, jobs=2))
    parallel.backend(jobs=1).warm(["evalkit.did.twfe"])  # in process: nothing happens
    parallel.shutdown()


def _slow_in_workers(x: int) -> tuple[int, int]:
    import multiprocessing
    import os
    import time

    if multiprocessing.parent_process() is not None:
        time.sleep(0.2)
    return x, os.getpid()


def test_this_process_takes_items_and_a_slow_worker_fewer():
    import os

    parallel.shutdown()
    out = parallel.map(_slow_in_workers, range(40), jobs=2)
    assert [x for x, _ in out] == list(range(40))  # in item order
    mine = sum(pid == os.getpid() for _, pid in out)
    # the worker sleeps 0.2 s per item (and starts cold): this process takes most items
    assert 20 < mine < 40
    parallel.shutdown()


def test_the_first_failing_item_is_raised():
    with pytest.raises(ValueError, match="three") as info:
        parallel.map(_boom, [3, 3, 3, 3, 3], jobs=2)
    assert any("item 0" in n for n in getattr(info.value, "__notes__", [])) or any(
        "item 1" in n for n in getattr(info.value, "__notes__", [])
    )
    parallel.shutdown()


def _claim(item: tuple[str, int, str]) -> tuple[int, bool]:
    """Sleep a little; a heavy item holds an exclusive file while it runs."""
    import os
    import time

    folder, i, kind = item
    if kind == "light":
        time.sleep(0.01)
        return i, True
    lock = os.path.join(folder, "heavy")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return i, False  # another heavy item is running
    try:
        time.sleep(0.15)
    finally:
        os.close(fd)
        os.remove(lock)
    return i, True


def test_imap_runs_one_heavy_item_at_a_time_and_keeps_order(tmp_path):
    kinds = ["heavy", "heavy", "light", "heavy", "light", "light", "heavy", "heavy"]
    kinds += ["light"] * 12 + ["heavy"]
    items = [(str(tmp_path), i, k) for i, k in enumerate(kinds)]
    runner = parallel.Backend(jobs=2)
    out = list(runner.imap(_claim, iter(items), window=2, heavy=lambda x: x[2] == "heavy"))
    assert [i for i, _ in out] == list(range(len(items)))
    assert all(alone for _, alone in out)
    # without the limit two heavy items overlap (the check above can fail)
    free = list(runner.imap(_claim, iter(items), window=2))
    assert [i for i, _ in free] == list(range(len(items)))
    assert not all(alone for _, alone in free)


def test_imap_heavy_item_errors_are_raised(tmp_path):
    runner = parallel.Backend(jobs=2)
    with pytest.raises(ValueError, match="three"):
        list(runner.imap(_boom, iter(range(6)), heavy=lambda x: x % 2 == 1))
