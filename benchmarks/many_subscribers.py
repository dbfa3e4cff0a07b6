#!/usr/bin/env python3
"""Many subscribed websocket connections across several `syncline serve` processes, and one change pushed to all of
them (issue 13, item 4).

Starts its own redis-server and SERVERS `syncline serve` processes on one SQLite file (examples/blog/config.json with
a Redis bus, pings off, max_connections above the share of each), one port each: the open-file limit of a process
here is 20,000, so no process can hold them all. Then one client process per server opens PER_SERVER websockets to it
from a loopback address of its own (127.0.0.2, 127.0.0.3, ...: each source address has its own ephemeral ports), and
subscribes each to row 1 (subscribe_instance, reply 201). When every socket is subscribed, this script patches row 1
with Python's sqlite3 module (a writer that is not syncline: the capture trigger records it) and every client times
the push on each of its sockets from the commit. Prints the connection rate, the servers' RSS per connection, and the
push latency over all sockets.

Usage: benchmarks/many_subscribers.py SYNCLINE_BINARY SERVERS PER_SERVER
Needs redis-server. Standard library only.
"""
import json
import multiprocessing
import os
import resource
import selectors
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

from raw_websocket import open_websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def masked_text(text):
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81, 0x80 | len(payload)])  # requests here are under 126 bytes
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s, buffer):
    """One server frame (unmasked) from socket s; buffer holds bytes read past it. Returns (opcode, payload, rest)."""
    while True:
        if len(buffer) >= 2:
            length = buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) >= 4:
                    length = int.from_bytes(buffer[2:4], "big")
                    offset = 4
                else:
                    length = None
            elif length == 127:
                if len(buffer) >= 10:
                    length = int.from_bytes(buffer[2:10], "big")
                    offset = 10
                else:
                    length = None
            if length is not None and len(buffer) >= offset + length:
                return buffer[0] & 0x0F, buffer[offset:offset + length], buffer[offset + length:]
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        buffer += chunk


def client(index, port, count, ready, go, results):
    raise_file_limit()
    source = f"127.0.0.{2 + index}"
    sockets = []
    start = time.time()
    for i in range(count):
        s, rest = open_websocket(port, "/ws/posts/", source)
        s.sendall(masked_text('{"action":"subscribe_instance","pk":1,"request_id":%d}' % i))
        opcode, payload, rest = read_frame(s, rest)
        if b'"response_status":201' not in payload:
            raise RuntimeError("subscribe answered %r" % payload[:200])
        sockets.append((s, rest))
    connect_seconds = time.time() - start
    ready.put((index, count, connect_seconds))
    go.wait()
    selector = selectors.DefaultSelector()
    buffers = {}
    for s, rest in sockets:
        s.setblocking(False)
        buffers[s] = rest
        selector.register(s, selectors.EVENT_READ)
    arrivals = []
    deadline = time.time() + 120
    while len(arrivals) < count and time.time() < deadline:
        for key, _ in selector.select(timeout=1):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(s)
                continue
            buffers[s] += chunk
            data = buffers[s]
            # The push is one text frame (under 64 KiB); its arrival is when its last byte is here.
            if len(data) >= 4 or (len(data) >= 2 and data[1] & 0x7F < 126):
                length, offset = data[1] & 0x7F, 2
                if length == 126:
                    length, offset = int.from_bytes(data[2:4], "big"), 4
                if len(data) >= offset + length:
                    arrivals.append(time.time())
                    selector.unregister(s)
    results.put((index, arrivals))
    time.sleep(1)
    for s, _ in sockets:
        s.close()


def main():
    binary, servers, per_server = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    raise_file_limit()
    work = tempfile.mkdtemp(prefix="syncline-many-")
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--maxclients", "1000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(ROOT, "examples", "blog", "config.json")) as f:
        config = json.load(f)
    config.pop("static", None)
    config["bus"] = {"redis": f"redis://127.0.0.1:{redis_port}/0"}
    config["ping_interval_ms"] = 0
    config["max_connections"] = per_server + 1000
    config["max_subscriptions_per_socket"] = 10
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(config, f)
    processes = []
    ports = []
    try:
        time.sleep(0.5)
        for i in range(servers):
            port = free_port()
            ports.append(port)
            log = open(os.path.join(work, f"server{i}.log"), "w")
            processes.append(subprocess.Popen([binary, "serve", "--config", "config.json", "--port", str(port)],
                                              cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                              preexec_fn=raise_file_limit))
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port)).close()
                    break
                except OSError:
                    time.sleep(0.1)
        db = sqlite3.connect(os.path.join(work, "blog.db"))
        db.execute("INSERT INTO posts (id, title) VALUES (1, 'watched')")
        db.commit()
        time.sleep(1)
        rss_before = [rss_kib(p.pid) for p in processes]
        ready, results = multiprocessing.Queue(), multiprocessing.Queue()
        go = multiprocessing.Event()
        clients = [multiprocessing.Process(target=client, args=(i, ports[i], per_server, ready, go, results))
                   for i in range(servers)]
        start = time.time()
        for c in clients:
            c.start()
        rates = []
        for _ in clients:
            index, count, seconds = ready.get(timeout=900)
            rates.append(count / seconds)
            print(f"client {index}: {count} sockets subscribed in {seconds:.1f} s ({count / seconds:.0f}/s)",
                  flush=True)
        total = servers * per_server
        setup = time.time() - start
        time.sleep(2)
        rss_after = [rss_kib(p.pid) for p in processes]
        grown = sum(rss_after) - sum(rss_before)
        print(f"{total} subscribed sockets in {setup:.1f} s ({total / setup:.0f}/s over all clients); servers' RSS "
              f"{sum(rss_before)} KiB -> {sum(rss_after)} KiB: {grown * 1024 / total:.0f} bytes per subscribed "
              f"connection", flush=True)
        go.set()
        time.sleep(0.5)
        db.execute("UPDATE posts SET title = 'changed' WHERE id = 1")
        committed = time.time()
        db.commit()
        committed = (committed + time.time()) / 2
        latencies = []
        for _ in clients:
            index, arrivals = results.get(timeout=300)
            latencies += [a - committed for a in arrivals]
        latencies.sort()
        if latencies:
            def pct(p):
                return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
            print(f"push of one change: {len(latencies)} of {total} sockets got it; latency from the commit "
                  f"p50 {pct(0.5):.0f} ms, p90 {pct(0.9):.0f} ms, p99 {pct(0.99):.0f} ms, max "
                  f"{latencies[-1] * 1000:.0f} ms", flush=True)
        else:
            print("push of one change: no socket got it", flush=True)
        for c in clients:
            c.join(timeout=30)
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        redis.terminate()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
