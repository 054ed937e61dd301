"""Two-tower retrieval training, its offline evaluation and publishing versioned artefacts.

The artefact format the retrieval service loads lives in ``shared.artefacts.retrieval``.
"""
