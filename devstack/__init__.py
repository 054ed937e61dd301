"""The local development stack: launcher, span sink, trace reader and the bundled Triton."""
