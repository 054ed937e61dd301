"""The recommender microservices, one package each."""
