"""Offline evaluation of the whole pipeline and its stages (the figures in docs/)."""
