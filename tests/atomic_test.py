"""Atomic writes keep the old file on failure and give readable permissions."""
import os
import stat

import pytest

from pipeline import atomic


def test_write_replaces_and_is_world_readable(tmp_path):
    target = tmp_path / "report.json"
    atomic.write_text(target, "old\n")
    atomic.write_text(target, "new\n")
    assert target.read_text() == "new\n"
    old_mask = os.umask(0o022)
    try:
        atomic.write_text(target, "x")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_failure_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.keras"
    atomic.write_bytes(target, b"good")
    with pytest.raises(RuntimeError):
        with atomic.path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
