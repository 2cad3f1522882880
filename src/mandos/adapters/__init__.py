"""Thin adapters that do the I/O around the pure core."""
