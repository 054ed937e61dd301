"""Artefact contracts between the jobs that write models and the services that load them."""
