"""Common runtime of the recommender services: settings, logging, tracing, gRPC plumbing, data."""
