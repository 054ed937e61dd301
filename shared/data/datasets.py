"""The datasets by name, for the jobs and offline tools that take ``--dataset``."""

from __future__ import annotations

import argparse

from shared.data.types import Dataset

DATASETS = ("synthetic", "online-retail", "instacart")


def load_dataset(
    name: str, *, path: str | None = None, n_items: int = 2000, n_users: int = 500, seed: int = 7
) -> Dataset:
    """A dataset by name; ``path`` overrides the real datasets' default location."""
    if name == "synthetic":
        from shared.data import synthetic

        return synthetic.generate(n_items=n_items, n_users=n_users, seed=seed)
    if name == "online-retail":
        from shared.data import online_retail

        return online_retail.load(path)
    if name == "instacart":
        from shared.data import instacart

        return instacart.load(path)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def add_dataset_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str | None = "synthetic"
) -> None:
    """``--dataset`` and the options of ``load_dataset``."""
    parser.add_argument("--dataset", choices=DATASETS, default=default)
    parser.add_argument(
        "--data-path", default=None, help="dataset file or folder (default: ../shared/data)"
    )
    parser.add_argument("--n-items", type=int, default=2000, help="synthetic catalog size")
    parser.add_argument("--n-users", type=int, default=500, help="synthetic shoppers")
    parser.add_argument("--seed", type=int, default=7, help="synthetic generator seed")


def dataset_from_args(args: argparse.Namespace) -> Dataset:
    return load_dataset(
        args.dataset,
        path=args.data_path,
        n_items=args.n_items,
        n_users=args.n_users,
        seed=args.seed,
    )
