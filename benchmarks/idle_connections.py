#!/usr/bin/env python3
"""Server memory per idle websocket connection (issue 13, item 4).

Opens N websocket connections to a running `syncline serve` (plain handshakes on raw sockets, standard library only),
leaves them idle, and prints how much the server's resident memory (VmRSS of PID) grew per connection.

Usage: benchmarks/idle_connections.py PORT N PID [PATH]
The open-file limit of this process must allow N sockets (ulimit -n).
"""
import sys
import time

from raw_websocket import open_websocket


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
        s, _ = open_websocket(port, path)
        sockets.append(s)
    elapsed = time.time() - start
    time.sleep(2)
    after = rss_kib(pid)
    print(f"{n} connections in {elapsed:.1f} s ({n / elapsed:.0f}/s); server RSS {before} KiB -> {after} KiB: "
          f"{(after - before) * 1024 / n:.0f} bytes per connection")


if __name__ == "__main__":
    main()
