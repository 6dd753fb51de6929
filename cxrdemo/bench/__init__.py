"""Benchmarks: the single-image pipeline against the bare network and the idiomatic peer pipeline, ROAD's speed (``python -m cxrdemo bench``)."""
