"""A map after Backend.warm(for_imap=True) runs on the warm workers: no second pool."""

from __future__ import annotations

import os

from evalkit import parallel


def _where(item: int, rng) -> tuple[int, float]:
    return os.getpid(), float(rng.standard_normal()) + item


def test_a_map_beside_warm_imap_workers_uses_them_alone():
    parallel.shutdown()
    try:
        runner = parallel.backend(jobs=2)
        runner.warm(for_imap=True)  # a study: the fit workers start before the data are read
        out = runner.map(_where, range(8), seed=3)
        # the two warm workers took every item (this process waited) and no pool of
        # jobs - 1 workers was started beside them
        assert os.getpid() not in {pid for pid, _ in out}
        assert [key for key in parallel._POOLS if key[0] == os.getpid()] == [(os.getpid(), 2)]
        # the same numbers as in process: each item has its own stream
        alone = parallel.backend(jobs=1).map(_where, range(8), seed=3)
        assert [x for _, x in out] == [x for _, x in alone]
    finally:
        parallel.shutdown()
