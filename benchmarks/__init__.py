"""Benchmarks of inn: `python -m benchmarks [--smoke] [--only SECTION ...]`."""
