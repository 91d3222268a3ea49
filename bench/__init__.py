"""Benchmarks (`make bench`): end-to-end throughput through the simulator, and baselines."""
