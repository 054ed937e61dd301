"""Which numeric precision the ranker's Triton CPU path runs, chosen by measurement at export.

Candidates, each a runtime the python-backend ``model.py`` can load:

- ``fp32``: the exported ONNX graph on onnxruntime (the reference).
- ``int8``: the same graph after onnxruntime's dynamic quantization (int8 weights, activations
  quantized per call; Jacob et al., "Quantization and Training of Neural Networks for
  Efficient Integer-Arithmetic-Only Inference", CVPR 2018), fast where the CPU has VNNI.
- ``bf16``: the eager model on torch under CPU autocast to bfloat16, only where the CPU has
  native bf16 arithmetic (``avx512_bf16`` or ``amx_bf16``); elsewhere torch emulates it slowly.
- ``openvino_fp32``: the exported graph on OpenVINO's CPU plugin in fp32: the same
  arithmetic as the reference (scores within a few 1e-6), in OpenVINO's fused kernels; on a
  2-core AVX2-only EPYC 1.15x onnxruntime's fp32 where no lower precision agreed.
- ``openvino_bf16``: the exported graph on OpenVINO's CPU plugin with bf16 inference
  precision (again only where bf16 is native); its fused transformer kernels are faster than
  torch's autocast on the same arithmetic.
- ``openvino_int8``: the graph after NNCF post-training static quantization for transformers
  (int8 weights and activations, SmoothQuant for the activation outliers of BERT's layers,
  Xiao et al., ICML 2023; ranges calibrated on training-period shoppers' lists, never on the
  evaluation lists below) on OpenVINO. Both OpenVINO candidates need the ``openvino`` and
  ``nncf`` packages (the ``offline`` extra) and are skipped, with the reason recorded, where
  they are missing.

Each candidate scores the same evaluation candidates (real shopper contexts and candidate
lists, 50 per shopper) as fp32 and must agree with it: mean per-list Spearman rank
correlation >= 0.99 and NDCG@10 against the shoppers' later purchases within 1% of fp32's.
The fastest agreeing candidate is served; the report (timings, agreement, CPU flags) goes to
``cpu_precision.json`` beside the CPU repository's config.pbtxt and into the artefact's meta.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.ranker.model import OUTPUT_NAME, CrossEncoder, encode_pairs

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "bf16", "openvino_fp32", "openvino_bf16", "openvino_int8")
CHOICES = ("auto", *PRECISIONS)
METADATA_FILE = "cpu_precision.json"
INT8_ONNX_FILE = "model.int8.onnx"
# OpenVINO IR of the NNCF-quantized graph (the .bin beside it holds the weights).
OPENVINO_INT8_FILE = "model.openvino-int8.xml"
# Precisions the OpenVINO runtime serves, and the inference precision each compiles with
# (int8 layers run int8 either way; the hint is what the rest of the graph runs in).
OPENVINO_HINTS = {"openvino_fp32": "f32", "openvino_bf16": "bf16", "openvino_int8": "f32"}
CALIBRATION_LISTS = 24
# Node names of the exported graph's attention products (query x key, weights x value).
ATTENTION_PRODUCTS = r".*/attention/self/MatMul(_\d+)?$"
MIN_SPEARMAN = 0.99
MAX_NDCG_RELATIVE_DROP = 0.01
# The CPU features that decide which low-precision kernels exist on this machine.
RELEVANT_FLAGS = (
    "avx2",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)

# The instructions each precision's fast kernels are built on. A repository whose precision
# was checked on a CPU with one of its family and is served on a CPU with none runs other
# kernels than were checked: on a 2-core AVX2-only EPYC the int8 paths ran without VNNI and
# disagreed with fp32 (openvino_int8 NDCG@10 -11%, and slower than fp32; docs/ranker.md), bf16
# would be emulated. The generated model.py then serves fp32 (export.python_model).
KERNEL_FAMILIES: dict[str, tuple[str, ...]] = {
    "fp32": (),
    "int8": ("avx512_vnni", "avx_vnni", "amx_int8"),
    "openvino_int8": ("avx512_vnni", "avx_vnni", "amx_int8"),
    "bf16": ("avx512_bf16", "amx_bf16"),
    "openvino_fp32": (),
    "openvino_bf16": ("avx512_bf16", "amx_bf16"),
}

Arrays = dict[str, np.ndarray]
Scorer = Callable[[Arrays], np.ndarray]


@dataclass(frozen=True)
class EvalGroup:
    """One shopper's candidate list: tokenised (context, candidate) pairs and which
    candidates the shopper bought later."""

    arrays: Arrays
    relevant: np.ndarray
    user: str = ""

    @property
    def pairs(self) -> int:
        return int(self.relevant.shape[0])


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The relevant feature flags of this CPU (empty where /proc/cpuinfo is unreadable)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in RELEVANT_FLAGS if f in present]
    return []


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measured_with(precision: str, flags: Sequence[str]) -> tuple[str, ...]:
    """The flags of ``precision``'s kernel family among ``flags`` (those of the CPU its check
    ran on): a serving CPU needs one of them to run the kernels that were checked. Empty when
    the family is empty (fp32) or the checking CPU had none of it (then the check measured
    the kernels any CPU runs)."""
    if precision not in KERNEL_FAMILIES:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    return tuple(f for f in KERNEL_FAMILIES[precision] if f in flags)


def bf16_native(flags: Sequence[str]) -> bool:
    return "avx512_bf16" in flags or "amx_bf16" in flags


_MISSING_KERNELS = {
    "bf16": "no native bf16 on this CPU",
    "int8": "no int8 dot-product instructions on this CPU (its int8 kernels are built of "
    "other ones: on 2-core AVX2-only EPYCs both int8 candidates ranked off fp32 in every "
    "check, docs/ranker.md)",
}


def missing_kernels(precision: str, flags: Sequence[str], forced: str = "auto") -> str | None:
    """Why the check skips ``precision`` on a CPU with ``flags``, or None to measure it: a
    candidate whose kernel family (``KERNEL_FAMILIES``) the CPU lacks would be measured on
    emulated kernels, and is measured only when ``forced`` names it."""
    family = KERNEL_FAMILIES[precision]
    if not family or forced == precision or any(f in flags for f in family):
        return None
    kind = "bf16" if "bf16" in precision else "int8"
    return f"{_MISSING_KERNELS[kind]}; needs one of {' / '.join(family)}"


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (int8 scores can tie)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (starts + (counts - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation; 1.0 when both lists are constant, 0.0 when one is."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    da, db = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((da * da).sum() * (db * db).sum()))
    if denom == 0.0:
        return 1.0 if np.array_equal(ra, rb) else 0.0
    return float((da * db).sum() / denom)


def ndcg_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    """Binary-relevance NDCG@k of the candidates sorted by ``scores`` (stable on ties)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    gains = relevant[order].astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float(discounts[: min(k, int(relevant.sum()))].sum())
    return float((gains * discounts[: len(gains)]).sum() / ideal) if ideal else 0.0


def agreement(
    reference: Sequence[np.ndarray], variant: Sequence[np.ndarray], groups: Sequence[EvalGroup]
) -> dict[str, Any]:
    """How closely ``variant`` scores rank the groups as ``reference`` (fp32) does."""
    rhos = [spearman(r, v) for r, v in zip(reference, variant, strict=True)]
    ndcg_ref = float(
        np.mean([ndcg_at_k(r, g.relevant) for r, g in zip(reference, groups, strict=True)])
    )
    ndcg_var = float(
        np.mean([ndcg_at_k(v, g.relevant) for v, g in zip(variant, groups, strict=True)])
    )
    drop = (ndcg_ref - ndcg_var) / ndcg_ref if ndcg_ref > 0 else float(ndcg_var != ndcg_ref)
    return {
        "spearman_mean": float(np.mean(rhos)),
        "spearman_min": float(np.min(rhos)),
        "ndcg10_fp32": ndcg_ref,
        "ndcg10": ndcg_var,
        "ndcg10_relative_drop": float(drop),
        "max_abs_score_diff": float(
            max(np.max(np.abs(r - v)) for r, v in zip(reference, variant, strict=True))
        ),
        "agrees": bool(np.mean(rhos) >= MIN_SPEARMAN and drop <= MAX_NDCG_RELATIVE_DROP),
    }


def evaluation_groups(
    dataset: Any,
    tokenizer: Any,
    *,
    shoppers: int = 24,
    candidates: int = 50,
    max_length: int = 64,
    seed: int = 0,
) -> list[EvalGroup]:
    """Candidate lists of ``shoppers`` test-period shoppers (seeded sample, those whose later
    purchases are among their candidates first), as the ranker sees them: the shopper's
    context text against the co-occurrence candidates of their training history."""
    from offline.ranker.candidates import CooccurrenceCandidates, baskets
    from offline.ranker.training import _newest_first, candidate_text, shopper_context
    from shared.data.types import temporal_split

    train, test = temporal_split(dataset)
    source = CooccurrenceCandidates(train)
    history = {
        u: _newest_first([i for b in groups for i in b]) for u, groups in baskets(train).items()
    }
    later = {u: {i for b in groups for i in b} for u, groups in baskets(test).items()}
    users = sorted(u for u in later if u in history)
    random.Random(seed).shuffle(users)
    lists = []
    for user in users:
        cands = [c for c in source.candidates(history[user], candidates) if c in dataset.items]
        if len(cands) == candidates:
            lists.append((user, cands, bool(later[user] & set(cands))))
    lists.sort(key=lambda x: not x[2])  # stable: shoppers with a hit first, seeded order
    groups = []
    for user, cands, _ in lists[:shoppers]:
        ctx = shopper_context(history[user], dataset.items)
        arrays = encode_pairs(
            tokenizer,
            [ctx] * len(cands),
            [candidate_text(dataset.items[c]) for c in cands],
            max_length,
        )
        groups.append(EvalGroup(arrays, np.array([c in later[user] for c in cands]), user))
    if not groups:
        raise ValueError(f"dataset {dataset.name!r} yields no {candidates}-candidate lists")
    return groups


def default_evaluation_dataset() -> Any:
    """The Online Retail sample where it is present (real text), else the synthetic set."""
    from shared.data import online_retail, synthetic

    if online_retail.default_path().exists():
        return online_retail.load()
    return synthetic.generate()


def calibration_groups(
    dataset: Any,
    tokenizer: Any,
    *,
    shoppers: int = CALIBRATION_LISTS,
    candidates: int = 50,
    max_length: int = 64,
    seed: int = 1,
    exclude: Sequence[str] = (),
) -> list[Arrays]:
    """Pair batches for static quantization's activation ranges: the context of a seeded
    sample of TRAINING-period shoppers (none of ``exclude``) against the co-occurrence
    candidates of their history. No later purchases are read."""
    from offline.ranker.candidates import CooccurrenceCandidates, baskets
    from offline.ranker.training import _newest_first, candidate_text, shopper_context
    from shared.data.types import temporal_split

    train, _ = temporal_split(dataset)
    source = CooccurrenceCandidates(train)
    history = {
        u: _newest_first([i for b in groups for i in b]) for u, groups in baskets(train).items()
    }
    skip = set(exclude)
    users = sorted(u for u in history if u not in skip)
    random.Random(seed).shuffle(users)
    batches = []
    for user in users:
        cands = [c for c in source.candidates(history[user], candidates) if c in dataset.items]
        if not cands:
            continue
        ctx = shopper_context(history[user], dataset.items)
        batches.append(
            encode_pairs(
                tokenizer,
                [ctx] * len(cands),
                [candidate_text(dataset.items[c]) for c in cands],
                max_length,
            )
        )
        if len(batches) == shoppers:
            break
    if not batches:
        raise ValueError(f"dataset {dataset.name!r} yields no calibration lists")
    return batches


def openvino_missing() -> str | None:
    """Why the OpenVINO candidates cannot run here, or None when they can."""
    import importlib.util

    for package in ("openvino", "nncf"):
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed (the offline extra has it)"
    return None


def quantize_openvino_int8(
    onnx_path: Path, calibration: Sequence[Arrays], out: Path | None = None
) -> Path:
    """NNCF post-training static quantization (transformer preset: SmoothQuant, int8
    weights and activations) of an exported graph, saved once beside it as OpenVINO IR.

    The two activation-by-activation products of each attention block (query x key, and
    the attention weights x value) stay in float: on the Online Retail artefact (48
    real candidate lists, 2 threads) that raised the mean Spearman correlation with fp32
    from 0.9916 to 0.9934 (the least list's 0.980 -> 0.985) and was faster (3.26x fp32
    against 3.06x), because those small products cost more to quantize than they save."""
    import nncf
    import openvino as ov

    out = out or onnx_path.with_name(OPENVINO_INT8_FILE)
    if out.exists() and out.stat().st_mtime >= onnx_path.stat().st_mtime:
        return out
    if not calibration:
        raise ValueError("static int8 quantization needs calibration batches")
    model = ov.Core().read_model(str(onnx_path))
    quantized = nncf.quantize(
        model,
        nncf.Dataset(list(calibration)),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(patterns=[ATTENTION_PRODUCTS], validate=False),
    )
    tmp = out.with_name(out.stem + ".tmp.xml")
    ov.save_model(quantized, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(out.with_suffix(".bin"))
    tmp.replace(out)
    return out


def openvino_compiled(path: Path, hint: str, threads: int) -> Any:
    """``path`` (ONNX or IR) compiled for OpenVINO's CPU plugin the way the Triton model.py
    compiles it: latency mode, ``threads`` threads, no core pinning on a shared CPU."""
    import openvino as ov

    return ov.Core().compile_model(
        str(path),
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": hint,
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False,
        },
    )


def openvino_scorer(path: Path, hint: str, threads: int) -> Scorer:
    compiled = openvino_compiled(path, hint, threads)
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def run(arrays: Arrays) -> np.ndarray:
        result = request.infer(arrays)
        return np.array(result[output], dtype=np.float32).reshape(-1)

    return run


def quantize_int8(onnx_path: Path, out: Path | None = None) -> Path:
    """onnxruntime dynamic quantization of an exported graph (int8 weights, per-channel),
    written once beside it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = out or onnx_path.with_name(INT8_ONNX_FILE)
    if not out.exists() or out.stat().st_mtime < onnx_path.stat().st_mtime:
        tmp = out.with_suffix(".tmp")
        quantize_dynamic(str(onnx_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        tmp.replace(out)
    return out


def onnx_scorer(path: Path, threads: int) -> Scorer:
    from offline.ranker.export import onnx_session

    session = onnx_session(path, threads)

    def run(arrays: Arrays) -> np.ndarray:
        out = session.run([OUTPUT_NAME], arrays)[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    return run


def torch_bf16_scorer(model: CrossEncoder, threads: int) -> Scorer:
    """The eager model under CPU bf16 autocast, as the generated torch ``model.py`` runs it."""
    net = model.to("cpu").float().eval()

    def run(arrays: Arrays) -> np.ndarray:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                out = net(**{k: torch.from_numpy(v) for k, v in arrays.items()})
            return out.float().numpy().reshape(-1)
        finally:
            torch.set_num_threads(before)

    return run


def measure(
    scorers: dict[str, Scorer], groups: Sequence[EvalGroup], *, forced: str = "auto"
) -> dict[str, Any]:
    """Time every scorer on ``groups``, check each against ``scorers["fp32"]`` and choose:
    ``forced`` when it names a precision, else the fastest (highest pairs/s) that agrees.

    The scorers take turns list by list, so load from other processes on a shared CPU falls
    on all of them alike and their ratios hold even where absolute times do not.
    """
    if forced not in CHOICES:
        raise ValueError(f"cpu precision must be one of {CHOICES}")
    if "fp32" not in scorers:
        raise ValueError("the fp32 reference scorer is required")
    for scorer in scorers.values():
        scorer(groups[0].arrays)  # warm-up: sessions, kernels, allocator
    scores: dict[str, list[np.ndarray]] = {n: [] for n in scorers}
    times: dict[str, list[float]] = {n: [] for n in scorers}
    for g in groups:
        for name, scorer in scorers.items():
            start = time.perf_counter()
            scores[name].append(scorer(g.arrays))
            times[name].append(time.perf_counter() - start)
    pairs = sum(g.pairs for g in groups)
    results = {
        name: {
            "p50_ms": float(np.percentile(times[name], 50) * 1000),
            "pairs_s": float(pairs / sum(times[name])),
            **agreement(scores["fp32"], scores[name], groups),
        }
        for name in scorers
    }
    fp32_rate = results["fp32"]["pairs_s"]
    for r in results.values():
        r["speedup_vs_fp32"] = r["pairs_s"] / fp32_rate
    agreeing = [n for n, r in results.items() if r["agrees"]]
    chosen = forced if forced != "auto" else max(agreeing, key=lambda n: results[n]["pairs_s"])
    if chosen not in results:
        raise ValueError(f"cpu precision {chosen!r} was not measured")
    return {"chosen": chosen, "mode": forced, "candidates": results}


def choose_cpu_precision(
    model: CrossEncoder,
    onnx_path: Path,
    groups: Sequence[EvalGroup],
    *,
    calibration: Sequence[Arrays] = (),
    forced: str = "auto",
    threads: int = 2,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    flags: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Measure fp32 and openvino_fp32, and the int8 and bf16 candidates where the CPU has
    their kernels (``missing_kernels``; openvino_int8 also needs ``calibration``), on this
    machine and pick one; the returned report is what ``write_model_repository`` records.
    ``flags``: the CPU's (default: read from /proc/cpuinfo)."""
    flags = cpu_flags() if flags is None else list(flags)
    scorers: dict[str, Scorer] = {"fp32": onnx_scorer(onnx_path, threads)}
    skipped: dict[str, str] = {}
    for name in ("int8", "bf16"):
        why = missing_kernels(name, flags, forced)
        if why:
            skipped[name] = why
        elif name == "int8":
            scorers[name] = onnx_scorer(quantize_int8(onnx_path), threads)
        else:
            scorers[name] = torch_bf16_scorer(model, threads)
    no_openvino = openvino_missing()
    for name, hint in OPENVINO_HINTS.items():
        why = no_openvino or missing_kernels(name, flags, forced)
        if why:
            skipped[name] = why
        elif name == "openvino_int8" and not calibration:
            skipped[name] = "no calibration lists"
        else:
            path = onnx_path if name != "openvino_int8" else None
            path = path or quantize_openvino_int8(onnx_path, calibration)
            scorers[name] = openvino_scorer(path, hint, threads)
    report = measure(scorers, groups, forced=forced)
    for name, why in skipped.items():
        report["candidates"][name] = {"skipped": why}
    report.update(
        {
            "measured_at": clock().isoformat(timespec="seconds"),
            "threads": threads,
            "cpu": {"model": cpu_model(), "cores": os.cpu_count(), "flags": flags},
            "evaluation": {
                "lists": len(groups),
                "pairs": sum(g.pairs for g in groups),
                "sequence_lengths": sorted({int(g.arrays["input_ids"].shape[1]) for g in groups}),
                "lists_with_a_later_purchase": sum(bool(g.relevant.any()) for g in groups),
            },
            "criteria": {
                "spearman_mean_min": MIN_SPEARMAN,
                "ndcg10_max_relative_drop": MAX_NDCG_RELATIVE_DROP,
            },
        }
    )
    chosen = report["candidates"][report["chosen"]]
    if not chosen.get("agrees", False):
        log.warning("forced cpu precision disagrees with fp32", extra={"precision": forced})
    log.info(
        "cpu precision chosen",
        extra={
            "precision": report["chosen"],
            "mode": forced,
            "timings": {
                n: round(r["pairs_s"], 1) for n, r in report["candidates"].items() if "pairs_s" in r
            },
        },
    )
    return report
