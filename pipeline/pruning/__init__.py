"""The pruning library: graph reading, channel groups, criteria, selection, plans, rebuild."""
