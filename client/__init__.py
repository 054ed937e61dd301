"""``recsys``: the command-line client of the recommender."""
