"""A websocket handshake on a plain blocking socket, for the benchmark clients (standard library only)."""
import base64
import os
import socket


def open_websocket(port, path="/ws/posts/", source=None):
    """Connects to 127.0.0.1:port (from `source`, a local address, when given) and completes the handshake for
    `path`. Returns (socket, bytes read past the handshake). Raises RuntimeError when it is refused or cut."""
    s = socket.socket()
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
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
        raise RuntimeError("handshake refused: %r" % reply[:100])
    return s, reply.split(b"\r\n\r\n", 1)[1]
