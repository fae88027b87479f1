"""Benchmarks (run as scripts; figures in bench/RESULTS.md)."""
