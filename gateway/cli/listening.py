"""The listening socket of `warden serve`, bound before anything else happens, and served by
one process or, forked, by several (`--workers N`).

    sock = listen("127.0.0.1", 8080)   # or CommandError: `port 8080 on 127.0.0.1 is in use; ...`

Two things about it are easy to lose:

- **TCP_NODELAY on every connection.** uvicorn may write a response's head and body in two
  sends; without TCP_NODELAY, Nagle's algorithm holds the body back until the client
  acknowledges the head, which a client delays by up to 40 ms (delayed ACK): on asyncio's event
  loop every keep-alive `GET /healthz` took 44 ms. asyncio sets TCP_NODELAY on an accepted
  connection only when the listening socket object says AF_INET/AF_INET6, SOCK_STREAM and proto
  IPPROTO_TCP (`asyncio.base_events._set_nodelay`); `socket.socket(family, SOCK_STREAM)` leaves
  proto 0, and every accepted socket copies it (uvicorn's own `--workers` had the same fault:
  Kludex/uvicorn#3149). uvloop, when uvicorn runs on it, sets TCP_NODELAY itself (even under
  a listener of proto 0). So the protocol is named when the socket is made, and TCP_NODELAY is
  also set on the listening socket, whose connections inherit it on Linux, whatever the loop.
  The workers are forked and serve this same socket object: nothing is rebuilt from a file
  descriptor.
- **How the processes share connections.** Each new connection goes to the process that accepts
  it first, and the event loop accepts every connection it finds queued each time the socket is
  readable. A busy process is not waiting to accept, so under load the others take a share
  (`wrk -c16` against two workers, three runs: 68% and 32% of the requests), but a burst opened
  while the gateway is idle mostly goes to one process (of 16 connections opened at once, one
  process took 9 to 16, most often 15 or 16, in each of 20 trials). On asyncio's loop, accepting
  one connection per turn spread such a burst better (8 to 14 of 16), but asyncio takes that
  number from the backlog, which it also passes to `listen()`, and uvloop passes the backlog to
  `listen()` alone: a backlog of 1 left a queue of one connection, dropped handshakes and a p99
  of ~1 s (the client's SYN retry). So the backlog stays uvicorn's, `BACKLOG`.
"""

from __future__ import annotations

import errno
import socket

from gateway.cli.guard import CommandError

BACKLOG = 2048  # uvicorn's default
SPEAKER = "warden serve"


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (TCP_NODELAY on its connections), or the one line that
    says why there cannot be one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)  # on Linux a port bound but not yet listening elsewhere fails here
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(f"port {port} on {host} is in use; choose another with --port",
                               prefix=SPEAKER) from None
        raise CommandError(f"cannot listen on {host} port {port}: {exc.strerror or exc}", prefix=SPEAKER) from None
    return sock

