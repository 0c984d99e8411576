"""Micro-benchmarks (pytest-benchmark), each parametrised over ours and its baseline and grouped
so that `pytest benches` prints them side by side. CI runs them with --benchmark-disable, once
each, so that they cannot rot."""
