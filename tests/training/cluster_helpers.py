"""Test helpers for clusters of processes on this machine: free ports and ``TF_CONFIG`` values.

Only the tests use them (``bench/distribute_throughput.py`` writes its own,
so it never loads TensorFlow in the launching process).
"""
import json
import socket


def tf_config(workers: list[str], index: int, kind: str = "worker") -> str:
    """A ``TF_CONFIG`` value for task ``index`` of ``kind`` in a cluster of ``workers``.

    Example:
      >>> tf_config(["localhost:12345", "localhost:12346"], 1)
      '{"cluster": {"worker": ["localhost:12345", "localhost:12346"]}, "task": {"type": "worker", "index": 1}}'
    """
    return json.dumps({"cluster": {"worker": list(workers)},
                       "task": {"type": kind, "index": index}})


def loopback_addresses(n: int) -> list[str]:
    """``n`` free ``localhost:PORT`` addresses, for a cluster of processes on this machine.

    The ports are free when returned; another process could still take one
    before the workers bind it (fine for tests).
    """
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    addresses = [f"localhost:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return addresses
