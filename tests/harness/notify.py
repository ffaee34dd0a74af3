"""A stand-in for systemd's end of NOTIFY_SOCKET: a real datagram socket that records
what a server tells it (sd_notify), for the unit tests and the servers' readiness tests."""

from __future__ import annotations

import socket


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET, as systemd binds it."""

    def __init__(self, address: str, env_value: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2)
        self.env = {"NOTIFY_SOCKET": env_value}

    def receive(self) -> list[str]:
        return self.sock.recv(4096).decode().split("\n")

    def until(self, first_field: str, most: int = 20) -> list[list[str]]:
        """The datagrams received up to and including the first that starts with
        `first_field` (a TimeoutError if none comes)."""
        got: list[list[str]] = []
        while not got or got[-1][0] != first_field:
            assert len(got) < most, got
            got.append(self.receive())
        return got

    def drain(self) -> list[list[str]]:
        """Every datagram received so far."""
        received = []
        self.sock.setblocking(False)
        try:
            while True:
                received.append(self.sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            return received
        finally:
            self.sock.settimeout(2)
