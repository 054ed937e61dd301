"""The CPU precision check: agreement figures, the choice, and what the export records."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import openvino as ov
import pytest
import torch
from transformers import BertConfig, BertModel

from offline.ranker import cpu_precision as cp
from offline.ranker.export import (
    export_onnx,
    parse_config,
    python_model,
    record_cpu_precision,
    write_model_repository,
)
from services.ranker.model import CrossEncoder


def _groups(n: int = 6, pairs: int = 20, length: int = 16, seed: int = 0) -> list[cp.EvalGroup]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        arrays = {
            "input_ids": rng.integers(5, 99, size=(pairs, length)).astype(np.int64),
            "attention_mask": np.ones((pairs, length), dtype=np.int64),
            "token_type_ids": (np.arange(length)[None, :] >= length // 2)
            .repeat(pairs, 0)
            .astype(np.int64),
        }
        relevant = np.zeros(pairs, dtype=bool)
        relevant[rng.choice(pairs, 3, replace=False)] = True
        out.append(cp.EvalGroup(arrays, relevant))
    return out


def _reference(arrays: cp.Arrays) -> np.ndarray:
    # A deterministic score per pair that depends on its tokens.
    return (arrays["input_ids"][:, :4].sum(1) * 0.37 % 7).astype(np.float32)


def test_spearman_and_ndcg() -> None:
    a = np.array([0.1, 0.5, 0.3, 0.9])
    assert cp.spearman(a, a * 3 + 1) == pytest.approx(1.0)
    assert cp.spearman(a, -a) == pytest.approx(-1.0)
    assert cp.spearman(np.array([1.0, 1.0, 2.0]), np.array([0.0, 0.0, 5.0])) == pytest.approx(1.0)
    relevant = np.array([False, True, False, False])
    assert cp.ndcg_at_k(a, relevant, k=2) == pytest.approx(1 / np.log2(3))
    assert cp.ndcg_at_k(a, np.zeros(4, dtype=bool)) == 0.0


def test_a_broken_variant_fails_the_agreement_check() -> None:
    groups = _groups()
    reference = [_reference(g.arrays) for g in groups]
    rng = np.random.default_rng(1)
    close = [r + rng.normal(0, 1e-4, r.shape).astype(np.float32) for r in reference]
    shuffled = [rng.permutation(r) for r in reference]
    assert cp.agreement(reference, close, groups)["agrees"] is True
    broken = cp.agreement(reference, shuffled, groups)
    assert broken["agrees"] is False
    assert broken["spearman_mean"] < cp.MIN_SPEARMAN


def _slow(delay_s: float, fn: cp.Scorer) -> cp.Scorer:
    def run(arrays: cp.Arrays) -> np.ndarray:
        time.sleep(delay_s)
        return fn(arrays)

    return run


def test_the_fastest_agreeing_precision_is_chosen_and_a_flag_forces_one() -> None:
    groups = _groups(n=3)
    rng = np.random.default_rng(2)

    def shuffled(arrays: cp.Arrays) -> np.ndarray:
        return rng.permutation(_reference(arrays))

    scorers = {
        "fp32": _slow(0.02, _reference),
        "bf16": _slow(0.005, lambda a: _reference(a) + np.float32(1e-5)),
        "int8": shuffled,  # fastest, but ranks differently
    }
    report = cp.measure(scorers, groups)
    assert report["chosen"] == "bf16"
    assert report["candidates"]["int8"]["agrees"] is False
    assert report["candidates"]["bf16"]["speedup_vs_fp32"] > 1.5
    assert cp.measure(scorers, groups, forced="int8")["chosen"] == "int8"
    assert cp.measure({"fp32": _reference}, groups)["chosen"] == "fp32"
    with pytest.raises(ValueError, match="cpu precision"):
        cp.measure(scorers, groups, forced="fp8")
    with pytest.raises(ValueError, match="not measured"):
        cp.measure({"fp32": _reference}, groups, forced="bf16")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Test CPU\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert cp.cpu_flags(info) == ["avx2", "avx512f", "avx512_vnni"]
    assert cp.bf16_native(cp.cpu_flags(info)) is False
    assert cp.bf16_native(["avx512_bf16"]) is True
    assert cp.cpu_model(info) == "Test CPU"
    assert cp.cpu_flags(tmp_path / "missing") == []


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[CrossEncoder, Path]:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = CrossEncoder(BertModel(config, add_pooling_layer=False)).eval()
    onnx_path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return model, onnx_path


@pytest.mark.parametrize("precision", cp.PRECISIONS)
def test_the_choice_and_its_figures_are_written_with_the_repository(
    tiny: tuple[CrossEncoder, Path], tmp_path: Path, precision: str
) -> None:
    model, onnx_path = tiny
    calibration = [g.arrays for g in _groups(n=4, seed=9)]
    report = cp.choose_cpu_precision(
        model, onnx_path, _groups(n=2), calibration=calibration, forced=precision, threads=1
    )
    assert report["chosen"] == precision
    assert report["mode"] == precision
    measured = {n for n, r in report["candidates"].items() if "pairs_s" in r}
    # The forced one is measured whatever the CPU; the others where it has their kernels.
    flags = cp.cpu_flags()
    present = {n for n in cp.PRECISIONS if cp.missing_kernels(n, flags) is None}
    assert measured == present | {precision}
    for name in set(cp.PRECISIONS) - measured:
        assert "needs one of" in report["candidates"][name]["skipped"]
    assert report["cpu"]["flags"] == flags
    for r in report["candidates"].values():
        if "pairs_s" in r:
            assert r["pairs_s"] > 0
            assert -1.0 <= r["spearman_mean"] <= 1.0
    folder = write_model_repository(
        onnx_path,
        tmp_path / "repo",
        "ranker_bert",
        "cpu",
        precision=precision,
        model=model,
        precision_report=report,
    )
    written = json.loads((folder / cp.METADATA_FILE).read_text())
    assert written["chosen"] == precision
    assert written["candidates"]["fp32"]["spearman_mean"] == pytest.approx(1.0)
    config = parse_config(folder / "config.pbtxt")
    assert config.parameters["cpu_precision"].string_value == precision
    version = folder / "1"
    source = (version / "model.py").read_text()
    compile(source, "model.py", "exec")
    assert (version / "model.onnx").exists()  # the fp32 graph stays, as in the gpu variant
    assert (version / cp.INT8_ONNX_FILE).exists() is (precision == "int8")
    assert (version / "model.pt").exists() is (precision == "bf16")
    assert (version / cp.OPENVINO_INT8_FILE).exists() is (precision == "openvino_int8")
    if precision == "int8":
        assert f"ONNX_MODEL_FILE = {cp.INT8_ONNX_FILE!r}" in source
    if precision == "bf16":
        assert "BF16_AUTOCAST = True" in source
    if precision.startswith("openvino"):
        assert "import openvino as ov" in source
        hint = cp.OPENVINO_HINTS[precision]
        assert f"OPENVINO_PRECISION_HINT = {hint!r}" in source


def test_candidates_without_their_kernels_are_skipped_unless_forced(
    tiny: tuple[CrossEncoder, Path],
) -> None:
    model, onnx_path = tiny
    calibration = [g.arrays for g in _groups(n=2, seed=9)]

    def run(flags: list[str], forced: str = "auto") -> dict[str, dict[str, object]]:
        report = cp.choose_cpu_precision(
            model,
            onnx_path,
            _groups(n=2),
            calibration=calibration,
            forced=forced,
            threads=1,
            flags=flags,
        )
        assert report["cpu"]["flags"] == flags
        return dict(report["candidates"])

    # AVX2 only: int8 would run emulated, bf16 too; the two fp32 runtimes are measured.
    avx2 = run(["avx2"])
    assert {n for n, r in avx2.items() if "pairs_s" in r} == {"fp32", "openvino_fp32"}
    for name in ("int8", "openvino_int8"):
        assert "int8 dot-product" in str(avx2[name]["skipped"])
        assert "avx512_vnni / avx_vnni / amx_int8" in str(avx2[name]["skipped"])
    assert "no native bf16" in str(avx2["openvino_bf16"]["skipped"])
    # VNNI: both int8 candidates are measured; forcing one measures it on any CPU.
    vnni = run(["avx2", "avx512_vnni"])
    assert {"int8", "openvino_int8"} <= {n for n, r in vnni.items() if "pairs_s" in r}
    forced = run(["avx2"], forced="int8")
    assert "pairs_s" in forced["int8"]
    assert "skipped" in forced["openvino_int8"]
    assert cp.missing_kernels("fp32", []) is None
    assert cp.missing_kernels("openvino_fp32", []) is None


def test_openvino_int8_is_quantized_from_calibration_lists_and_ranks_like_fp32(
    tiny: tuple[CrossEncoder, Path], tmp_path: Path
) -> None:
    """NNCF's static int8 graph on OpenVINO scores the tiny model's pairs close to fp32
    onnxruntime; it is not made without calibration lists and is reused once made."""
    _, onnx_path = tiny
    local = tmp_path / "model.onnx"
    local.write_bytes(onnx_path.read_bytes())
    with pytest.raises(ValueError, match="calibration"):
        cp.quantize_openvino_int8(local, [])
    calibration = [g.arrays for g in _groups(n=4, seed=9)]
    ir = cp.quantize_openvino_int8(local, calibration)
    assert ir.name == cp.OPENVINO_INT8_FILE
    assert ir.with_suffix(".bin").stat().st_size > 0
    made = ir.stat().st_mtime_ns
    assert cp.quantize_openvino_int8(local, []) == ir
    assert ir.stat().st_mtime_ns == made

    quantized: dict[str, bool] = {}
    for op in ov.Core().read_model(str(ir)).get_ops():
        if op.get_type_name() == "MatMul":
            feeds = [op.input_value(i).get_node().get_type_name() for i in range(2)]
            quantized[op.get_friendly_name()] = "FakeQuantize" in feeds
    products = [n for n in quantized if re.fullmatch(cp.ATTENTION_PRODUCTS, n)]
    assert len(products) == 4  # 2 layers x (query x key, weights x value)
    assert not any(quantized[n] for n in products)  # kept in float
    assert any(quantized.values())  # the weight products are int8
    groups = _groups(n=3, seed=4)
    fp32 = cp.onnx_scorer(local, 1)
    int8 = cp.openvino_scorer(ir, "f32", 1)
    for g in groups:
        a, b = fp32(g.arrays), int8(g.arrays)
        assert a.shape == b.shape
        assert not np.array_equal(a, b)  # int8 arithmetic, not the fp32 graph
        assert cp.spearman(a, b) > 0.9
    same = cp.openvino_scorer(local, "f32", 1)
    assert np.allclose(same(groups[0].arrays), fp32(groups[0].arrays), atol=1e-4)


def test_calibration_lists_come_from_training_shoppers_only() -> None:
    from shared.data import synthetic
    from shared.minilm import load_backbone

    _, tokenizer = load_backbone()
    dataset = synthetic.generate(n_items=300, n_users=80, seed=3)
    groups = cp.evaluation_groups(dataset, tokenizer, shoppers=4, candidates=20, max_length=32)
    evaluated = [g.user for g in groups]
    assert all(evaluated)
    batches = cp.calibration_groups(
        dataset, tokenizer, shoppers=6, candidates=20, max_length=32, exclude=evaluated
    )
    assert len(batches) == 6
    for arrays in batches:
        assert arrays["input_ids"].shape[1] <= 32
    everyone = {e.user_id for e in dataset.interactions}
    with pytest.raises(ValueError, match="no calibration lists"):
        cp.calibration_groups(dataset, tokenizer, exclude=sorted(everyone))


def test_wrong_combinations_are_refused(tiny: tuple[CrossEncoder, Path], tmp_path: Path) -> None:
    _, onnx_path = tiny
    with pytest.raises(ValueError, match="gpu variant"):
        write_model_repository(onnx_path, tmp_path, "m", "gpu", precision="int8")
    with pytest.raises(ValueError, match="pass model"):
        write_model_repository(onnx_path, tmp_path, "m", "cpu", precision="bf16")
    with pytest.raises(ValueError, match="another precision"):
        write_model_repository(
            onnx_path, tmp_path, "m", "cpu", precision="fp32", precision_report={"chosen": "int8"}
        )
    with pytest.raises(ValueError, match="precision must be"):
        write_model_repository(onnx_path, tmp_path, "m", "cpu", precision="fp8")
    assert "BF16_AUTOCAST = False" in python_model("torch")


def test_the_report_goes_into_the_artefact_meta(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text(json.dumps({"version": "v1"}))
    record_cpu_precision(tmp_path, {"chosen": "int8"})
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta == {"version": "v1", "triton_cpu_precision": {"chosen": "int8"}}


def test_evaluation_groups_come_from_real_candidate_lists() -> None:
    from shared.data import synthetic
    from shared.minilm import load_backbone

    _, tokenizer = load_backbone()
    dataset = synthetic.generate(n_items=300, n_users=80, seed=3)
    groups = cp.evaluation_groups(dataset, tokenizer, shoppers=4, candidates=20, max_length=32)
    assert 0 < len(groups) <= 4
    for g in groups:
        assert g.arrays["input_ids"].shape[0] == 20 == g.pairs
        assert g.arrays["input_ids"].shape[1] <= 32
    with pytest.raises(ValueError, match="no 5000-candidate lists"):
        cp.evaluation_groups(dataset, tokenizer, candidates=5000)


def test_a_precision_records_the_kernels_it_was_checked_with(
    tiny: tuple[CrossEncoder, Path], tmp_path: Path
) -> None:
    # A serving CPU needs one instruction of the checked precision's family (any VNNI or AMX
    # int8 for the int8 kernels, native bf16 for bf16); fp32 needs none.
    vnni = ["avx2", "avx512f", "avx512_vnni"]
    assert cp.measured_with("int8", vnni) == ("avx512_vnni",)
    assert cp.measured_with("openvino_int8", [*vnni, "amx_int8"]) == ("avx512_vnni", "amx_int8")
    assert cp.measured_with("openvino_bf16", ["avx512_bf16"]) == ("avx512_bf16",)
    assert cp.measured_with("fp32", vnni) == ()
    # Checked on an AVX2-only CPU: those are the kernels every CPU runs, no guard.
    assert cp.measured_with("int8", ["avx2"]) == ()
    with pytest.raises(ValueError, match="precision must be"):
        cp.measured_with("fp8", vnni)
    _, onnx_path = tiny
    for flags, expected in ((vnni, "('avx512_vnni',)"), (["avx2"], "()")):
        report = {"chosen": "int8", "mode": "auto", "cpu": {"flags": flags}}
        folder = write_model_repository(
            onnx_path,
            tmp_path / str(len(flags)),
            "m",
            "cpu",
            precision="int8",
            precision_report=report,
        )
        code = (folder / "1" / "model.py").read_text()
        assert f"MEASURED_WITH = {expected}\n" in code
        assert "CPU_PRECISION = 'int8'\n" in code
        assert "FP32_MODEL_FILE = 'model.onnx'\n" in code
        assert (folder / "1" / "model.onnx").exists()  # the fallback is always there
    fp32 = write_model_repository(onnx_path, tmp_path / "fp32", "m", "cpu", precision="fp32")
    assert "MEASURED_WITH = ()\n" in (fp32 / "1" / "model.py").read_text()
