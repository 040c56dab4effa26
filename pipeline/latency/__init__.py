"""Pruning to a latency budget: per-layer tables, allocation, measure-and-refine."""
