"""The android tests' fakes: a tiny .tflite, a benchmark binary and an adb on PATH."""
import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent.parent / "fixtures" / "benchmark_model"
# Enough of a flatbuffer for the "TFL3" identifier check; `run` never loads the model.
FAKE_TFLITE = b"\x1c\x00\x00\x00TFL3" + bytes(24)
FAKE_ADB = """#!/bin/sh
echo "$@" >> "$FAKE_ADB_CALLS"
[ "$1" = "-s" ] && shift 2
case "$1" in
  devices) printf 'List of devices attached\\n%s' "$FAKE_ADB_DEVICES";;
  shell) case "$2" in *benchmark_model\\ --graph=*) cat "$FAKE_ADB_LOG";; esac;;
esac
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "tiny.tflite").write_bytes(FAKE_TFLITE)
    (tmp_path / "benchmark_model").write_bytes(b"\x7fELF")
    return tmp_path / "tiny.tflite", tmp_path / "benchmark_model"


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """An adb on PATH that lists one device and answers benchmark_model with a recorded log."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB)
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_CALLS", str(tmp_path / "calls.txt"))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "emulator-5554\tdevice\n")
    monkeypatch.setenv("FAKE_ADB_LOG", str(DATA / "info_percentiles.log"))
    return tmp_path / "calls.txt"
