"""Benchmarks, run as modules: ``python -m benchmarks.<name>``. Not part of the test suite."""
