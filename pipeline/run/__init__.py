"""The run layer: the only code that reads a ConfigDict (config check, stages, report)."""
