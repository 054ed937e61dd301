"""The ranker against a REAL Triton server on CPU (the binary bundled by nvidia-pytriton),
serving the real exported model: repository checks, ONNX vs eager torch, Triton vs the local
backend through the gRPC service, batch splitting through Triton, the int8 and bf16 CPU
runtimes served by Triton (and fp32 where the CPU lacks the kernels they were checked with),
work dropped when its callers give up, and Triton killed."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import model_config_pb2 as mc

from devstack.triton_server import TritonProcess, ensure_repository, free_port
from offline.ranker import cpu_precision as cp
from offline.ranker.export import (
    ONNX_FILE,
    model_config,
    onnx_scores,
    onnx_session,
    parse_config,
    write_model_repository,
)
from services.ranker.app import SERVICE_NAME, RankerApp, build_ranker, load_ranker
from services.ranker.config import RankerSettings
from services.ranker.model import (
    RankerArtefact,
    create_untrained_artefact,
    encode_pairs,
    load_artefact,
    score_arrays,
)
from services.ranker.scorer import Ranker
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import ranker_pb2, ranker_pb2_grpc

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> RankerArtefact:
    torch.set_num_threads(1)  # see RankerSettings.torch_threads
    root = tmp_path_factory.mktemp("ranker")
    create_untrained_artefact(root, "v-triton", seed=11, max_length=32)
    return load_artefact(root)


@pytest.fixture(scope="module")
def repos(artefact: RankerArtefact) -> dict[str, Path]:
    # fp32 here: these tests compare Triton with eager torch at 1e-4; the other precisions
    # are served by test_each_cpu_precision_is_served_by_triton.
    return {
        v: ensure_repository(artefact.path, v, cpu_precision="fp32", eval_shoppers=2)
        for v in ("cpu", "gpu")
    }


@pytest.fixture(scope="module")
def triton(
    repos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonProcess]:
    server = TritonProcess(
        repos["cpu"],
        grpc_port=free_port(),
        http_port=free_port(),
        metrics_port=free_port(),
        log_file=tmp_path_factory.mktemp("triton") / "triton.log",
    ).start()
    try:
        server.wait_ready(180)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(2)


def test_both_repository_variants_parse_strictly(repos: dict[str, Path]) -> None:
    gpu = parse_config(repos["gpu"] / "ranker_bert" / "config.pbtxt")
    cpu = parse_config(repos["cpu"] / "ranker_bert" / "config.pbtxt")
    assert gpu.platform == "onnxruntime_onnx"
    assert [g.kind for g in gpu.instance_group] == [gpu.instance_group[0].KIND_GPU]
    assert cpu.backend == "python"
    for config in (gpu, cpu):
        assert config.name == "ranker_bert"
        assert config.max_batch_size == 512
        assert 0 < config.dynamic_batching.max_queue_delay_microseconds <= 100_000
        assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
            (n, mc.TYPE_INT64, [-1]) for n in ("input_ids", "attention_mask", "token_type_ids")
        ]
        assert [(o.name, list(o.dims)) for o in config.output] == [("logits", [1])]
        policy = config.dynamic_batching.default_queue_policy
        assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
        assert policy.default_timeout_microseconds > 0
        assert policy.allow_timeout_override
    onnx_gpu = repos["gpu"] / "ranker_bert" / "1" / ONNX_FILE
    onnx_cpu = repos["cpu"] / "ranker_bert" / "1" / ONNX_FILE
    assert onnx_gpu.read_bytes() == onnx_cpu.read_bytes()
    assert (repos["cpu"] / "ranker_bert" / "1" / "model.py").exists()


def test_the_cpu_precision_check_is_recorded(
    repos: dict[str, Path], artefact: RankerArtefact
) -> None:
    import json

    recorded = json.loads((repos["cpu"] / "ranker_bert" / cp.METADATA_FILE).read_text())
    meta = json.loads((artefact.path / "meta.json").read_text())
    assert recorded == meta["triton_cpu_precision"]
    assert (recorded["chosen"], recorded["mode"]) == ("fp32", "fp32")
    assert recorded["evaluation"]["dataset"]
    assert recorded["evaluation"]["lists"] == 2
    candidates = recorded["candidates"]
    assert candidates["fp32"]["spearman_mean"] == pytest.approx(1.0)
    flags = recorded["cpu"]["flags"]
    assert ("spearman_mean" in candidates["int8"]) is (cp.missing_kernels("int8", flags) is None)
    assert ("pairs_s" in candidates["bf16"]) is cp.bf16_native(flags)
    cpu = parse_config(repos["cpu"] / "ranker_bert" / "config.pbtxt")
    assert cpu.parameters["cpu_precision"].string_value == "fp32"
    assert not parse_config(repos["gpu"] / "ranker_bert" / "config.pbtxt").parameters
    assert not (repos["gpu"] / "ranker_bert" / cp.METADATA_FILE).exists()


def test_a_repository_exported_otherwise_than_asked_is_exported_again(
    tmp_path: Path,
) -> None:
    import json

    from devstack.stack import _triton_cpu_repository_exists, served_cpu_precision
    from devstack.triton_server import CPU_PRECISION_CHOICES, exported_cpu_precision

    assert CPU_PRECISION_CHOICES == cp.CHOICES  # the CLIs' list, kept without importing torch
    root = tmp_path / "ranker"
    create_untrained_artefact(root, "v-forced", seed=3, max_length=16)
    model = ensure_repository(root, "cpu", cpu_precision="fp32", eval_shoppers=2) / "ranker_bert"
    assert exported_cpu_precision(model) == "fp32"
    assert served_cpu_precision(tmp_path / "elsewhere") is None
    written = (model / "config.pbtxt").stat().st_mtime_ns
    # Asked for what it serves: kept as it is.
    ensure_repository(root, "cpu", cpu_precision="fp32", eval_shoppers=2)
    assert (model / "config.pbtxt").stat().st_mtime_ns == written
    assert _triton_cpu_repository_exists(root, "fp32")
    # The local stack's export step is not done while it was exported otherwise.
    assert not _triton_cpu_repository_exists(root, "openvino_fp32")
    assert not _triton_cpu_repository_exists(root, "auto")  # forced, never measured
    ensure_repository(root, "cpu", cpu_precision="openvino_fp32", eval_shoppers=2)
    assert exported_cpu_precision(model) == "openvino_fp32"
    assert served_cpu_precision(root) == "openvino_fp32"  # what load_bench records
    assert parse_config(model / "config.pbtxt").parameters["cpu_precision"].string_value == (
        "openvino_fp32"
    )
    assert "openvino" in (model / "1" / "model.py").read_text()
    assert json.loads((model / cp.METADATA_FILE).read_text())["mode"] == "openvino_fp32"
    assert not _triton_cpu_repository_exists(root, "fp32")
    # auto after a forced export: measured again, then kept.
    ensure_repository(root, "cpu", cpu_precision="auto", eval_shoppers=2)
    record = json.loads((model / cp.METADATA_FILE).read_text())
    assert record["mode"] == "auto"
    assert record["candidates"][record["chosen"]]["agrees"]
    assert _triton_cpu_repository_exists(root, "auto")
    measured = (model / "config.pbtxt").stat().st_mtime_ns
    ensure_repository(root, "cpu", cpu_precision="auto", eval_shoppers=2)
    assert (model / "config.pbtxt").stat().st_mtime_ns == measured
    # An unreadable record is not what anything asked for.
    (model / cp.METADATA_FILE).write_text("{")
    assert exported_cpu_precision(model) is None
    assert not _triton_cpu_repository_exists(root, "auto")
    ensure_repository(root, "cpu", cpu_precision="fp32", eval_shoppers=2)
    assert exported_cpu_precision(model) == "fp32"


def test_strict_parse_rejects_unknown_fields(tmp_path: Path) -> None:
    bad = tmp_path / "config.pbtxt"
    bad.write_text('name: "m"\nmax_batch_size: 8\nnot_a_field: 1\n')
    with pytest.raises(Exception, match="not_a_field"):
        parse_config(bad)


def test_unbounded_queue_delay_and_unknown_variant_are_refused() -> None:
    with pytest.raises(ValueError, match="bounded"):
        model_config("m", "gpu", max_queue_delay_us=0)
    with pytest.raises(ValueError, match="variant"):
        model_config("m", "tpu")
    with pytest.raises(ValueError, match="expire"):
        model_config("m", "cpu", queue_timeout_us=0)
    on_gpu = model_config("m", "cpu", python_on_gpu=True)
    assert on_gpu.backend == "python"
    assert on_gpu.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert on_gpu.HasField("dynamic_batching")
    unbatched = model_config("m", "gpu", dynamic_batching=False)
    assert not unbatched.HasField("dynamic_batching")
    assert unbatched.max_batch_size == 512  # clients may still send batches


@pytest.fixture(scope="module")
def session(repos: dict[str, Path]) -> Any:
    return onnx_session(repos["gpu"] / "ranker_bert" / "1" / ONNX_FILE)


@pytest.mark.parametrize(("batch", "length"), [(1, 8), (3, 24), (5, 64)])
def test_onnx_matches_eager_torch(
    artefact: RankerArtefact, session: Any, batch: int, length: int
) -> None:
    rng = np.random.default_rng(batch)
    arrays = {
        "input_ids": rng.integers(1000, 5000, size=(batch, length)).astype(np.int64),
        "attention_mask": np.ones((batch, length), dtype=np.int64),
        "token_type_ids": np.zeros((batch, length), dtype=np.int64),
    }
    arrays["attention_mask"][0, length // 2 :] = 0
    arrays["token_type_ids"][:, length // 2 :] = 1
    eager = score_arrays(artefact.model, arrays)
    exported = onnx_scores(session, arrays)
    np.testing.assert_allclose(exported, eager, atol=1e-4)


@pytest.mark.parametrize("precision", [p for p in cp.PRECISIONS if p != "fp32"])
def test_each_cpu_precision_is_served_by_triton(
    artefact: RankerArtefact, repos: dict[str, Path], tmp_path: Path, precision: str
) -> None:
    """The repository written for a precision is what Triton runs: its config says so and
    its scores equal that precision's in-process scores, close to fp32 but not identical."""
    if "bf16" in precision and not cp.bf16_native(cp.cpu_flags()):
        pytest.skip("this CPU has no native bf16")
    onnx_path = artefact.path / "triton" / ONNX_FILE
    model = artefact.model
    arrays = encode_pairs(
        artefact.tokenizer,
        ["recent: red retrospot lunch bag"] * 50,
        [f"candle holder set of {i}" for i in range(50)],
        32,
    )
    calibration = [
        encode_pairs(
            artefact.tokenizer,
            ["recent: white hanging heart t-light holder"] * 20,
            [f"jumbo bag design {i}" for i in range(20)],
            32,
        )
    ]
    write_model_repository(
        onnx_path,
        tmp_path / "repo",
        "ranker_bert",
        "cpu",
        precision=precision,
        model=model,
        calibration=calibration,
    )
    in_process = {
        "bf16": lambda: cp.torch_bf16_scorer(model, 2),
        "int8": lambda: cp.onnx_scorer(onnx_path.with_name(cp.INT8_ONNX_FILE), 2),
        "openvino_fp32": lambda: cp.openvino_scorer(onnx_path, "f32", 2),
        "openvino_bf16": lambda: cp.openvino_scorer(onnx_path, "bf16", 2),
        "openvino_int8": lambda: cp.openvino_scorer(
            onnx_path.with_name(cp.OPENVINO_INT8_FILE), "f32", 2
        ),
    }
    expected = in_process[precision]()(arrays)
    scores, configured = _served_scores(tmp_path / "repo", arrays, tmp_path / "triton.log")
    assert configured == precision
    np.testing.assert_allclose(scores, expected, atol=1e-3)
    fp32 = score_arrays(model, arrays)
    if precision == "openvino_fp32":  # fp32 arithmetic in other kernels
        np.testing.assert_allclose(scores, fp32, atol=1e-4)
        assert "import openvino as ov" in (tmp_path / "repo/ranker_bert/1/model.py").read_text()
        return
    assert not np.allclose(scores, fp32, atol=1e-6)  # it is not the fp32 graph
    np.testing.assert_allclose(scores, fp32, atol=0.1)


def _served_scores(repo: Path, arrays: dict[str, np.ndarray], log: Path) -> tuple[np.ndarray, str]:
    """Scores of ``arrays`` from a real Triton serving ``repo``, and its configured precision."""
    from tritonclient.grpc import InferenceServerClient, InferInput

    server = TritonProcess(
        repo,
        grpc_port=free_port(),
        http_port=free_port(),
        metrics_port=free_port(),
        log_file=log,
    ).start()
    try:
        server.wait_ready(180)
        client = InferenceServerClient(server.grpc_url)
        served = client.get_model_config("ranker_bert").config
        inputs = []
        for name, value in arrays.items():
            tensor = InferInput(name, list(value.shape), "INT64")
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        scores = client.infer("ranker_bert", inputs).as_numpy("logits").reshape(-1)
        client.close()
    finally:
        server.stop()
    return scores, served.parameters["cpu_precision"].string_value


@pytest.mark.parametrize("has_vnni", [False, True])
def test_a_cpu_without_the_checked_int8_kernels_is_served_fp32(
    artefact: RankerArtefact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, has_vnni: bool
) -> None:
    """int8 checked on a CPU with VNNI and served where there is none runs other kernels than
    were checked: model.py serves the fp32 graph instead and says so in Triton's log."""
    onnx_path = artefact.path / "triton" / ONNX_FILE
    report = {"chosen": "int8", "mode": "int8", "cpu": {"flags": ["avx2", "avx512_vnni"]}}
    repo = tmp_path / "repo"
    write_model_repository(
        onnx_path, repo, "ranker_bert", "cpu", precision="int8", precision_report=report
    )
    # The serving CPU as model.py reads it: RANKER_CPUINFO stands for /proc/cpuinfo.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nflags\t\t: fpu sse2 avx avx2" + (" avx512_vnni" if has_vnni else "") + "\n"
    )
    monkeypatch.setenv("RANKER_CPUINFO", str(cpuinfo))
    arrays = encode_pairs(
        artefact.tokenizer,
        ["recent: red retrospot lunch bag"] * 20,
        [f"candle holder set of {i}" for i in range(20)],
        32,
    )
    scores, configured = _served_scores(repo, arrays, tmp_path / "triton.log")
    assert configured == "int8"
    fp32 = cp.onnx_scorer(onnx_path, 2)(arrays)
    int8 = cp.onnx_scorer(onnx_path.with_name(cp.INT8_ONNX_FILE), 2)(arrays)
    assert not np.allclose(int8, fp32, atol=1e-6)
    log = (tmp_path / "triton.log").read_text()
    if has_vnni:
        np.testing.assert_allclose(scores, int8, atol=1e-4)
        assert "serving fp32" not in log
    else:
        np.testing.assert_allclose(scores, fp32, atol=1e-4)
        assert "ranker: int8 was checked on a CPU with avx512_vnni" in log
        assert "serving fp32" in log


def _service(ranker: Ranker) -> RankerApp:
    """The ranker service around an already loaded ``ranker`` (the app does not close it)."""
    settings = RankerSettings(
        port=0,
        grace_period_s=0.2,
        max_candidates=100,
        request_timeout_s=30.0,
        readiness_poll_s=0.1,
    )
    return build_ranker(settings, ranker=ranker)


@pytest.fixture
async def triton_service(
    triton: TritonProcess, artefact: RankerArtefact, executor: ThreadPoolExecutor
) -> AsyncIterator[RankerApp]:
    settings = RankerSettings(
        backend="triton",
        triton_url=triton.grpc_url,
        model_dir=str(artefact.path),
        max_batch=4,
        max_text_tokens=32,
    )
    ranker = load_ranker(settings, executor)
    try:
        async with _service(ranker) as app:
            yield app
    finally:
        await ranker.backend.close()


def _request(n: int) -> ranker_pb2.ScoreCandidatesRequest:
    return ranker_pb2.ScoreCandidatesRequest(
        context=ranker_pb2.ShopperContext(
            recent_item_titles=["JUMBO BAG RED RETROSPOT", "LUNCH BAG SPACEBOY"],
            recent_categories=["derived"],
        ),
        candidates=[
            ranker_pb2.CandidateItem(
                item_id=f"i{i}",
                title=f"{word} SET OF {i}" * (1 + 30 * (i == 0)),
                category_path=["derived", word.lower()],
                price=0.8 * (i + 1),
            )
            for i, word in enumerate(["MUG", "TEAPOT", "KITE", "CANDLE", "CARD", "BAG", "TIN"])
        ][:n],
    )


async def test_triton_scores_equal_the_local_backend(
    triton_service: RankerApp,
    artefact: RankerArtefact,
    executor: ThreadPoolExecutor,
) -> None:
    local = load_ranker(
        RankerSettings(backend="local", model_dir=str(artefact.path), max_text_tokens=32),
        executor,
    )
    request = _request(7)  # 7 candidates, max_batch 4: two Triton calls, one over-long title
    async with (
        _service(local) as local_service,
        create_channel(f"127.0.0.1:{triton_service.port}", max_attempts=1) as via_triton,
        create_channel(f"127.0.0.1:{local_service.port}", max_attempts=1) as via_local,
    ):
        remote = await ranker_pb2_grpc.RankerServiceStub(via_triton).ScoreCandidates(
            request, timeout=60
        )
        here = await ranker_pb2_grpc.RankerServiceStub(via_local).ScoreCandidates(
            request, timeout=60
        )
    assert remote.backend == "triton"
    assert here.backend == "local"
    assert remote.model_version == here.model_version == "v-triton"
    assert [s.item_id for s in remote.scores] == [f"i{i}" for i in range(7)]
    np.testing.assert_allclose(
        [s.score for s in remote.scores], [s.score for s in here.scores], atol=1e-4
    )


async def test_pairs_through_triton_equal_eager_torch(
    triton_service: RankerApp, artefact: RankerArtefact
) -> None:
    from shared.deadline import Budget

    ranker = triton_service.ranker
    arrays = encode_pairs(
        artefact.tokenizer, ["recent: red mug"] * 3, ["teapot", "kite", "mug " * 50], 32
    )
    remote = await ranker.backend.score(arrays, Budget.from_timeout(30))
    np.testing.assert_allclose(remote, score_arrays(artefact.model, arrays), atol=1e-4)


def _triton_metrics(server: TritonProcess, model: str) -> dict[str, float]:
    """Triton's per-model gauges and counters, from its Prometheus endpoint."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as resp:
        text = resp.read().decode()
    found: dict[str, float] = {}
    for name, labels, value in re.findall(r"^(nv_inference_\w+)\{([^}]*)\} (\S+)$", text, re.M):
        if f'model="{model}"' in labels:
            found[name] = found.get(name, 0.0) + float(value)
    return found


class _PendingPeak:
    """The largest ``nv_inference_pending_request_count`` seen while sampling every 10 ms."""

    def __init__(self, server: TritonProcess, model: str) -> None:
        self._server, self._model = server, model
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.value = 0.0

    def _sample(self) -> None:
        while not self._stop.is_set():
            pending = _triton_metrics(self._server, self._model)
            self.value = max(self.value, pending["nv_inference_pending_request_count"])
            self._stop.wait(0.01)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _many_candidates(n: int) -> ranker_pb2.ScoreCandidatesRequest:
    request = _request(1)
    del request.candidates[:]
    request.candidates.extend(
        ranker_pb2.CandidateItem(
            item_id=f"c{i}", title=f"HEART T-LIGHT HOLDER NO {i} " * 4, price=1.0 + i
        )
        for i in range(n)
    )
    return request


async def test_callers_giving_up_leave_ranker_and_triton_idle_within_a_second(
    triton: TritonProcess, artefact: RankerArtefact, executor: ThreadPoolExecutor
) -> None:
    """Overload the ranker with short-deadline calls, so Triton's queue is long when they
    expire: the ranker cancels its Triton calls, and Triton rejects what is still queued
    past the per-request timeout the ranker sent, so both are idle within 1 s."""
    settings = RankerSettings(
        backend="triton",
        triton_url=triton.grpc_url,
        model_dir=str(artefact.path),
        max_batch=1,  # one Triton request per candidate: a long queue from few calls
        max_text_tokens=32,
    )
    ranker = load_ranker(settings, executor)
    model = settings.model_name
    try:
        async with (
            _service(ranker) as app,
            create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
        ):
            stub = ranker_pb2_grpc.RankerServiceStub(channel)
            await stub.ScoreCandidates(_request(2), timeout=60)  # warm up the model
            # A deadline of 1.5 times one call alone: 24 calls at once outlast it on any CPU,
            # where a fixed one can expire inside the ranker before Triton sees a request.
            started = time.monotonic()
            await stub.ScoreCandidates(_many_candidates(48), timeout=60)
            alone = time.monotonic() - started
            deadline = max(0.6, 1.5 * alone)
            # The longest one merged batch can run: Triton merges up to max_batch_size (512)
            # queued pairs, about 512 / 48 times the call above, with a 1.5x margin.
            longest_batch = max(1.0, 1.5 * alone * 512 / 48)
            before = _triton_metrics(triton, model)
            # Triton's queue is sampled from a thread of its own: the event loop is busy with
            # the 24 calls, and on a slow CPU a poller on it can miss the whole window.
            peak = _PendingPeak(triton, model)
            peak.start()
            calls = [
                asyncio.ensure_future(stub.ScoreCandidates(_many_candidates(48), timeout=deadline))
                for _ in range(24)
            ]
            try:
                await asyncio.wait(calls)
            finally:
                peak.stop()
            gave_up = time.monotonic()
            peak_pending = peak.value
            codes = [c.exception().code() for c in calls if c.exception() is not None]  # type: ignore[union-attr]
            # The load must really outlast the deadlines with work still queued, or this
            # test would prove nothing.
            assert grpc.StatusCode.DEADLINE_EXCEEDED in codes
            # Queued requests show as pending, or, once past the timeout the ranker sent, as
            # Triton's failures: one of them, whichever the sampling caught.
            expired = _triton_metrics(triton, model)["nv_inference_request_failure"]
            assert peak_pending > 0 or expired > before["nv_inference_request_failure"]

            idle_at = None
            while time.monotonic() - gave_up < 3.0:
                now = await asyncio.to_thread(_triton_metrics, triton, model)
                if now["nv_inference_pending_request_count"] == 0 and app.servicer.in_flight == 0:
                    idle_at, at_idle = time.monotonic(), now
                    break
                await asyncio.sleep(0.02)
            assert idle_at is not None
            assert idle_at - gave_up < 1.0
            # A batch already executing is not pending and may finish after that: it can hold
            # hundreds of the queued pairs (dynamic batching), over 1 s on a slow CPU (a count
            # that held still for 1 s once rose after it). With the queue empty it is the last
            # one: once the execution count has held still for longer than any batch can run
            # (at most 60 s after giving up) it stays still, as nothing new starts.
            settled = await asyncio.to_thread(_triton_metrics, triton, model)
            still_since = time.monotonic()
            while time.monotonic() - gave_up < 60.0:
                await asyncio.sleep(0.25)
                now = await asyncio.to_thread(_triton_metrics, triton, model)
                if now["nv_inference_exec_count"] != settled["nv_inference_exec_count"]:
                    settled, still_since = now, time.monotonic()
                elif time.monotonic() - still_since > longest_batch:
                    break
            await asyncio.sleep(0.5)
            after = await asyncio.to_thread(_triton_metrics, triton, model)
            assert after["nv_inference_exec_count"] == settled["nv_inference_exec_count"]
            # Nothing started after the queue emptied: the one model instance finished at most
            # the batch it was executing then.
            assert after["nv_inference_exec_count"] - at_idle["nv_inference_exec_count"] <= 1
            assert after["nv_inference_pending_request_count"] == 0
            submitted = 24 * 48
            done = after["nv_inference_request_success"] - before["nv_inference_request_success"]
            # Work whose caller had gone was dropped, not computed.
            assert done < submitted
    finally:
        await ranker.backend.close()


async def test_triton_killed_means_unavailable_and_not_serving(
    triton_service: RankerApp, triton: TritonProcess
) -> None:
    """Runs last in this module: it kills the module's Triton server."""
    watcher = triton_service.watcher
    assert await watcher.check() is True
    async with create_channel(f"127.0.0.1:{triton_service.port}", max_attempts=1) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        ready = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        assert ready.status == health_pb2.HealthCheckResponse.SERVING
        triton.kill()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ranker_pb2_grpc.RankerServiceStub(channel).ScoreCandidates(
                _request(3), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # The app's watcher polls every 0.1 s and turns readiness off.
        for _ in range(100):
            if watcher.ready is False:
                break
            await asyncio.sleep(0.05)
        ready = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert ready.status == health_pb2.HealthCheckResponse.NOT_SERVING
