"""Write Triton model repositories for a ranker artefact.

    python scripts/export_triton.py --model-dir var/models/ranker --out var/triton/ranker
    python scripts/export_triton.py --variant gpu --max-batch-size 256 --max-queue-delay-us 1000

``gpu``: ``<out>/gpu/<model>/config.pbtxt`` (platform onnxruntime_onnx, KIND_GPU) +
``1/model.onnx``, for a stock NGC Triton image (Kubernetes). ``cpu``: the python-backend
variant running the same model.onnx with onnxruntime, for the Triton bundled with
nvidia-pytriton (tests, local stack). See docs/ranker.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from services.ranker.export import VARIANTS, export_repository, parse_config


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="Write Triton model repositories for the ranker.")
    p.add_argument("--model-dir", default="var/models/ranker", help="Artefact or its root.")
    p.add_argument("--out", default="var/triton/ranker", help="Output folder.")
    p.add_argument("--variant", choices=[*VARIANTS, "both"], default="both")
    p.add_argument("--model-name", help="Model name (default: the artefact's, ranker_bert).")
    p.add_argument("--max-batch-size", type=int, default=512)
    p.add_argument("--max-queue-delay-us", type=int, default=2000)
    p.add_argument("--instances", type=int, default=1)
    args = p.parse_args(argv)
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    repos = export_repository(
        Path(args.model_dir),
        Path(args.out),
        variants=variants,
        model_name=args.model_name,
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        instances=args.instances,
    )
    for variant, repo in repos.items():
        for config in repo.glob("*/config.pbtxt"):
            parse_config(config)  # strict: fails on anything Triton would not accept
            print(f"{variant}: {config.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
