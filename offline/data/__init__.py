"""Importers into the interchange format (shared.data.format) and a checker for a folder."""
