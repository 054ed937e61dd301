"""Operational jobs: key ring administration, seeding, re-keying and DP releases."""
