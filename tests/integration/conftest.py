"""Stack fixtures: a small but complete local stack, built and started the way
scripts/run_stack.py does it, on ports no other stack uses.

The artefacts are real and small so the tests stay within minutes on a 2-core CPU: a seeded
SQLite feature store (300 items, 60 shoppers, ids pseudonymized with the gateway's key), a
two-tower retrieval index trained for two epochs, and the pretrained MiniLM cross-encoder with
an untrained head as the ranker model (what is tested is the plumbing, not ranking quality).
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.stack import Layout, python_module

REPO = Path(__file__).resolve().parents[2]
N_ITEMS, N_USERS = 300, 60


def free_port_block(size: int) -> int:
    """A base port whose next ``size`` ports were free a moment ago (loopback only)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + size >= 65000:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no block of free ports found")


def dead_addr() -> str:
    """A loopback address nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def small_layout(var: Path, *, ranker_backend: str) -> Layout:
    base = free_port_block(6)
    triton = free_port_block(4)
    return Layout(
        root=REPO,
        var=var,
        base_port=base,
        triton_http_port=triton,
        triton_grpc_port=triton + 1,
        triton_metrics_port=triton + 2,
        otlp_port=triton + 3,
        ranker_backend=ranker_backend,
        candidate_count=20,
        default_deadline_s=20.0,
        # The precision choice has tests of its own (test_ranker_triton); here it would only
        # add a minute of measuring to every stack the suite builds.
        cpu_precision="fp32",
    )


_TEMPLATE: Path | None = None
_ARTEFACTS = ("keys", "feature_store.sqlite", "models")


def build_small_artefacts(layout: Layout) -> None:
    """Key ring, seeded store, retrieval index and ranker model under ``layout.var``.

    Built once per test session into a pristine template folder and copied for each stack,
    so the service and integration tests do not both pay for training.
    """
    global _TEMPLATE
    if _TEMPLATE is None:
        folder = Path(tempfile.mkdtemp(prefix="recsys-artefacts-"))
        atexit.register(shutil.rmtree, folder, True)
        _build(Layout(root=REPO, var=folder))
        _TEMPLATE = folder
    layout.var.mkdir(parents=True, exist_ok=True)
    for name in _ARTEFACTS:
        src = _TEMPLATE / name
        if src.is_dir():
            shutil.copytree(src, layout.var / name, symlinks=True)
        else:
            shutil.copy2(src, layout.var / name)


def _build(layout: Layout) -> None:
    import torch

    from offline.retrieval.training import TrainConfig, train
    from services.ranker.model import build_model
    from services.ranker.model import save_artefact as save_ranker
    from shared.artefacts.retrieval import save_artefact as save_retrieval
    from shared.data import synthetic
    from shared.data.format import write_folder

    torch.set_num_threads(2)
    data_dir = layout.var / "synthetic"
    subprocess.run(
        python_module("ops.keys", "generate", "--file", str(layout.key_file)),
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.seed",
            "--data",
            str(write_folder(synthetic.generate(n_items=N_ITEMS, n_users=N_USERS), data_dir)),
            "--database-url",
            f"sqlite:///{layout.feature_store_db}",
            "--pseudonym-key-file",
            str(layout.key_file),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    data = synthetic.generate(n_items=N_ITEMS, n_users=N_USERS)
    artefact = train(
        data.interactions,
        data.items,
        TrainConfig(epochs=2, dim=32),
        seed=0,
        dataset="synthetic",
        # Title embeddings are cached across runs under var/ (gitignored).
        text_cache_dir=REPO / "var" / "cache" / "retrieval" / "titles",
    )
    save_retrieval(artefact, layout.retrieval_dir, "test-v1")
    model, tokenizer = build_model(seed=0)
    save_ranker(model, tokenizer, layout.ranker_dir, "test-head-v1", {"max_length": 48})
