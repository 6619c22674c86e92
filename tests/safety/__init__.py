"""Regression tests for issue 14 ("Nothing lost, nothing leaked"): one per finding."""
