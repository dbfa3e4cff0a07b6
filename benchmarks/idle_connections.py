#!/usr/bin/env python3
"""Server memory per idle websocket connection (issue 13, item 4).

Opens N websocket connections to a running `syncline serve` (plain handshakes on raw sockets, standard library only),
leaves them idle, and prints how much the server's resident memory (VmRSS of PID) grew per connection.

Usage: benchmarks/idle_connections.py PORT N PID [PATH]
The open-file limit of this process must allow N sockets (ulimit -n).
"""
import base64
import os
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def main():
    port, n, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/ws/posts/"
    time.sleep(0.5)
    before = rss_kib(pid)
    sockets = []
    start = time.time()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("the server closed a connection during its handshake")
            reply += chunk
        if b" 101 " not in reply.split(b"\r\n")[0]:
            raise RuntimeError("handshake refused: %r" % reply[:80])
        sockets.append(s)
    elapsed = time.time() - start
    time.sleep(2)
    after = rss_kib(pid)
    print(f"{n} connections in {elapsed:.1f} s ({n / elapsed:.0f}/s); server RSS {before} KiB -> {after} KiB: "
          f"{(after - before) * 1024 / n:.0f} bytes per connection")


if __name__ == "__main__":
    main()
