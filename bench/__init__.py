"""Benchmarks (`make bench`): side-by-side measurements, not timed tests."""
