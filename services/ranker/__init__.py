"""BERT cross-encoder relevance ranker, served by NVIDIA Triton or a local torch backend."""
