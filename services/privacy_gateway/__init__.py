"""Privacy gateway: keyed pseudonyms, the PII policy for request contexts, and differentially
private releases of event-log aggregates charged to a persistent privacy-budget ledger."""
