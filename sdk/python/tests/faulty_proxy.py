"""A TCP proxy on loopback in front of the gateway whose first connections misbehave.

    drop         the request is forwarded and the gateway's whole answer read, then the
                 connection to the client is closed without a byte: the gateway decided, the
                 client never heard (what a crash of a proxy or a network cut looks like)
    unavailable  the proxy answers 503 problem+json itself (`Retry-After: 0`), as a gateway
                 with its database unreachable would; nothing is forwarded

After `times` such connections, every connection is relayed as it is. `packet_ids` lists the
packet id of every request a misbehaving connection read.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Literal

Mode = Literal["drop", "unavailable"]

UNAVAILABLE = json.dumps({"type": "https://warden.dev/problems/database_unavailable", "status": 503,
                          "title": "The database cannot be reached; nothing was recorded or executed",
                          "detail": "proxy drill", "code": "database_unavailable"}).encode()


def _read_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 message with a Content-Length body (or none), as raw bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class FaultyProxy:
    def __init__(self, upstream_port: int, mode: Mode, times: int = 1) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.mode = mode
        self.left = times
        self.faulted = 0
        self.packet_ids: list[str] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            with self._lock:
                fault = self.left > 0
                self.left -= int(fault)
            target = self._misbehave if fault else self._relay
            threading.Thread(target=target, args=(client,), daemon=True).start()

    def _misbehave(self, client: socket.socket) -> None:
        with client:
            request = _read_message(client)
            body = request.partition(b"\r\n\r\n")[2]
            if body:
                self.packet_ids.append(json.loads(body).get("packet_id", ""))
            self.faulted += 1  # counted before the client can see the fault
            if self.mode == "unavailable":
                client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
                               b"Retry-After: 0\r\nConnection: close\r\n"
                               b"Content-Length: " + str(len(UNAVAILABLE)).encode() + b"\r\n\r\n" + UNAVAILABLE)
            else:
                with socket.create_connection(self.upstream) as upstream:
                    upstream.sendall(request)
                    _read_message(upstream)

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)

        def pipe(source: socket.socket, sink: socket.socket) -> None:
            try:
                while chunk := source.recv(65536):
                    sink.sendall(chunk)
            except OSError:
                return
            finally:
                for sock in (source, sink):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        continue

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)
        client.close()
        upstream.close()
