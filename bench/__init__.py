"""Benchmarks: each script prints its figures and records them; `bench/suite.py` runs them all (`make bench`)."""
