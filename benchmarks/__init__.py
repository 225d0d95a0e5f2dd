"""Benchmarks of smtpcore against its peers (``python -m benchmarks``)."""
