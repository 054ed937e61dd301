"""Candidate retrieval: a two-tower embedding model, FAISS indexes and the RetrievalService.

The grpc-free offline API other parts import:

- ``services.retrieval.model``: ``train``, ``TrainConfig``, ``RetrievalArtefact``,
  ``save_artefact``, ``load_artefact``, ``resolve_version``.
- ``services.retrieval.index``: ``build_index``, ``CandidateIndex``.
"""
