"""A TCP port that carries each connection to a unix socket, for tests and benchmarks.

Sandboxed jobs reach a database over the network; a Postgres listening on a unix socket only
(the embedded one, the test session's) is invisible to them. This forwarder, run by threads
of the calling process, gives such a job a ``127.0.0.1`` port instead.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["UnixSocketForwarder"]


class UnixSocketForwarder:
    """Accepts TCP connections on 127.0.0.1 and pipes each to ``target`` (a socket path).

    ``with UnixSocketForwarder(path) as port:`` serves until the block ends."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []

    def __enter__(self) -> int:
        threading.Thread(target=self._accept, daemon=True).start()
        return self.server.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
