"""Test settings shared by tests/ and the doctests in src/: plot backend, no network.

The reference datasets ship inside the package (evalkit/datasets/data/), so the tests need
no data folder, no environment variable and no network. To keep it so, a test that opens a
connection to anything but this machine fails with an ``OSError`` naming the address
(downloads are tested through file:// URLs).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import matplotlib
import pytest

matplotlib.use("Agg")


def _is_local(address: Any) -> bool:
    if not isinstance(address, tuple):  # a Unix socket path
        return True
    host = str(address[0]).split("%")[0]
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    """Refuse connections to other machines for the whole test session."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(address: Any) -> None:
        if not _is_local(address):
            raise OSError(f"the tests must not use the network (connection to {address!r})")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        guard(address)
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return connect_ex(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        yield
