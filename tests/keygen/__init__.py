"""Tests of mandos-keygen."""
