"""Benchmarks (``make bench``): figures printed side by side with baselines; nothing is asserted on time."""
