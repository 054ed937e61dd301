"""The orchestrator: the public Recommend/LogEvents API over the five internal services."""
