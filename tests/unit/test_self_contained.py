"""The test suite runs on a fresh clone with nothing beside it and no network."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_connections_to_other_machines_are_refused(monkeypatch):
    for proxy in ("http_proxy", "https_proxy", "all_proxy"):  # no detour through a proxy
        monkeypatch.delenv(proxy, raising=False)
        monkeypatch.delenv(proxy.upper(), raising=False)
    with pytest.raises(OSError, match="must not use the network"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1, never routed
    with pytest.raises(OSError, match="must not use the network"):
        urllib.request.urlopen("http://192.0.2.1/", timeout=1)


def test_local_connections_still_work():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass


def test_nothing_reads_a_folder_beside_the_clone():
    """No test, source file or docs page points at a data folder outside the repository.

    The reference generators (tests/reference/generate_*.py) are left out: they are run by
    hand with the peer packages, not by the test suite.
    """
    offenders = []
    for folder in ("src", "tests", "docs", "benchmarks", "studies"):
        for file in (ROOT / folder).rglob("*"):
            if file.suffix not in {".py", ".md", ".toml"} or file == Path(__file__):
                continue
            if file.name.startswith("generate_"):
                continue
            text = file.read_text(encoding="utf-8")
            if "shared/data" in text or "../shared" in text:
                offenders.append(str(file.relative_to(ROOT)))
    assert offenders == []
