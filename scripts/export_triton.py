"""Write Triton model repositories for a ranker artefact.

    python scripts/export_triton.py --model-dir var/models/ranker --out var/triton/ranker
    python scripts/export_triton.py --variant gpu --max-batch-size 256 --max-queue-delay-us 1000

``gpu``: ``<out>/gpu/<model>/config.pbtxt`` (platform onnxruntime_onnx, KIND_GPU) +
``1/model.onnx``, for a stock NGC Triton image (Kubernetes). ``cpu``: the python-backend
variant running the same model at the CPU precision measured at export (``--cpu-precision``),
for the Triton bundled with nvidia-pytriton (tests, local stack). See docs/ranker.md. The same
as ``python -m offline.ranker.export``.
"""

from __future__ import annotations

import sys

from offline.ranker.export import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
