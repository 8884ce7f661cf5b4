"""A job as plain specs (spec.py), and the builders that assemble its reranker and data from them (builders.py)."""
