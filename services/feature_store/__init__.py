"""Feature store service: item catalog, event log and derived user features over SQLAlchemy."""
