"""Cross-encoder fine-tuning, its candidate sources and the export to Triton repositories."""
