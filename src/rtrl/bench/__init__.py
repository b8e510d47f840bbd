"""Benchmarks that print figures: ``python -m rtrl.bench {cells} [--json]``."""
