"""Android tooling: benchmark_model through adb and its log parser."""
