"""Operational jobs: key ring administration, seeding, re-keying, DP releases and live catalog
changes (``ops.catalog``)."""
