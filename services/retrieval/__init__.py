"""Candidate retrieval: FAISS indexes over the two-tower artefact and the RetrievalService.

The artefact format is ``shared.artefacts.retrieval``; training is ``offline.retrieval``.
"""
