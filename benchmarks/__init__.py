"""Benchmarks: not tests. Each prints ratios against a baseline measured in the same run."""
