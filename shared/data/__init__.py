"""Datasets: the synthetic embedded default and loaders for real public layouts."""

from shared.data.types import CatalogItem, Dataset, Interaction, temporal_split

__all__ = ["CatalogItem", "Dataset", "Interaction", "temporal_split"]
