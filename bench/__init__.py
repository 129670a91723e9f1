"""Benchmarks that measure photonic against rsync, Syncthing and a raw gRPC ceiling."""
