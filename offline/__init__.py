"""Offline work that no pod runs: training, export to Triton and offline evaluation."""
