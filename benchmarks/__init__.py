"""Benchmark harnesses; ``scripts/bench_*.py`` are their command-line entry points."""
