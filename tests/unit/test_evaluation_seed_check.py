"""The seed check's summary and table: spreads, and the default compared on seed means."""

from __future__ import annotations

import numpy as np
import pytest

from offline.evaluation import seed_check


def _runs(rng: np.random.Generator, base: np.ndarray, shifts: list[float]) -> list[np.ndarray]:
    return [np.clip(base + s + rng.normal(0, 0.01, base.shape), 0, 1) for s in shifts]


def test_summary_reports_each_seed_the_spread_and_the_default_on_seed_means() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.2, 400)
    by_seed = {
        "ALS": _runs(rng, base, [0.0, -0.03, -0.01]),
        "served + MMR(0.25)": _runs(rng, base, [0.02, 0.02, 0.02]),
    }
    deterministic = np.clip(base - 0.05, 0, 1)
    main = {"ALS": by_seed["ALS"][0], "served + MMR(0.25)": by_seed["served + MMR(0.25)"][0]}
    main["popularity"] = deterministic
    check = seed_check.summary(
        by_seed, main, [0, 1, 2], "served + MMR(0.25)", resamples=200, seed=0
    )
    als = check["rows"]["ALS"]
    assert als["ndcg@10"] == pytest.approx([float(r.mean()) for r in by_seed["ALS"]])
    assert als["spread"] == pytest.approx(max(als["ndcg@10"]) - min(als["ndcg@10"]))
    assert als["seeds_apart"] == [0, 1]
    # Two seeds of one recipe 0.03 apart: the shopper bootstrap calls them different.
    assert als["best_minus_worst_seed"]["low"] > 0
    # The default is compared on its seed mean with ALS's seed mean (0.02 - (-0.0133) apart),
    # and with the deterministic row's only list.
    minus = check["default_minus"]
    assert set(minus) == {"ALS", "popularity"}
    als_mean = np.mean(np.stack(by_seed["ALS"]), axis=0)
    default_mean = np.mean(np.stack(by_seed["served + MMR(0.25)"]), axis=0)
    assert minus["ALS"]["mean"] == pytest.approx(float((default_mean - als_mean).mean()))
    assert minus["popularity"]["mean"] == pytest.approx(
        float((default_mean - deterministic).mean())
    )
    text = seed_check.table(check)
    assert "| row | seed 0 | seed 1 | seed 2 | mean | spread |" in text
    assert "| test, mean over seeds: served + MMR(0.25) minus |" in text
    assert text.count("\n| ALS |") == 2


def test_without_a_served_default_there_is_nothing_to_compare() -> None:
    rng = np.random.default_rng(1)
    runs = _runs(rng, rng.uniform(0, 0.2, 50), [0.0, 0.0])
    check = seed_check.summary({"ALS": runs}, {"ALS": runs[0]}, [3, 4], None, resamples=100, seed=0)
    assert check["seeds"] == [3, 4]
    assert check["default_minus"] == {}
    assert "mean over seeds" not in seed_check.table(check)


def test_one_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two seeds"):
        seed_check.seed_rows(
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            [],
            set(),
            [],
            {},
            None,
            {},
            [0],
            candidates=100,
            tradeoffs=[],
            k=10,
        )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed-check", "1"], "at least 2 seeds"),
        (["--seed-check", "-2"], "at least 2 seeds"),
        (["--served-seeds", "0"], "--served-seeds must be >= 1"),
        (
            ["--served", "--served-bert-steps", "4", "--seed-check", "2"],
            "does not refit the cross-encoder",
        ),
    ],
)
def test_bad_seed_options_are_refused_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from offline.evaluation.pipeline import parse_args

    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_served_row_the_check_did_not_refit_is_not_compared() -> None:
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 0.2, 100)
    by_seed = {"served": _runs(rng, base, [0.0, 0.01])}
    main = {"served": by_seed["served"][0], "served + DPP(0.5)": base, "popularity": base}
    check = seed_check.summary(
        by_seed, main, [0, 1], "served", resamples=100, seed=0, unrefitted=["served + DPP(0.5)"]
    )
    assert set(check["default_minus"]) == {"popularity"}
