"""Stable content hashes: what a cached artifact or table depends on, as one short string.

Example:
  >>> fingerprint("plan", {"ratio": 0.5}, [1, 2]) == fingerprint("plan", {"ratio": 0.5}, (1, 2))
  True
"""
from __future__ import annotations

import hashlib
import json


def fingerprint(*parts) -> str:
    """A stable hash of JSON-serialisable ``parts`` (dict key order does not matter).

    Objects with a ``to_dict()`` (a ConfigDict, a config dataclass) hash as that
    dict, tuples and sets as lists, anything else as its ``str``.
    """
    text = json.dumps(parts, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (tuple, set, frozenset)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    return str(value)
