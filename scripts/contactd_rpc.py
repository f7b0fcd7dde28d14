"""One JSON-RPC call to contactd over its Unix socket, for the benchmark and CI scripts."""
import json
import socket


def rpc(sock_path, method, params=None):
    """Calls `method` and returns its result; raises OSError when nothing listens, and
    ConnectionError when the daemon closes the connection before answering."""
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sock_path)
        request = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            request["params"] = params
        s.sendall((json.dumps(request) + "\n").encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"contactd closed the connection before answering {method}")
            reply += chunk
    finally:
        s.close()
    return json.loads(reply)["result"]
