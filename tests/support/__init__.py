"""Helpers shared by the tests (and a few benchmarks): running `frugal`, brokers, replays, fixtures."""
