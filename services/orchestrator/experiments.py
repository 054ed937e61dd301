"""A/B experiments: a versioned JSON file of experiments, variants and traffic shares.

The file (``experiments_file``, typically a mounted ConfigMap key) is re-read when it changes
by the same mechanism as the stage switches (``switches.WatchedFile``): no restart, and an
invalid file is refused with the reason logged while the last good configuration stays in
force. Example::

    {"version": "2026-12-01.1",
     "experiments": [
       {"name": "diversity", "salt": "k3Jx9-diversity",
        "variants": [
          {"name": "control", "share": 0.5},
          {"name": "mmr-high", "share": 0.5, "method": "mmr", "tradeoff": 0.8}]}]}

Assignment is deterministic and sticky: the shopper's pseudonym (never the raw reference) and
the experiment's salt are hashed with SHA-256 to a point of [0, 1); the variants' shares cut
that interval in order, and a point past the last share is not in the experiment. The same
pseudonym always lands in the same variant for as long as the salt and shares stay; a new
salt reshuffles everyone, and a pseudonymization key rotation does too (the pseudonym
changes). Experiments with different salts are independent. A variant's settings override the
request's and the stage switches' for that shopper (an experiment must reach everyone in its
variant, or the comparison is biased by which clients send settings); two experiments may not
set the same knob.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.orchestrator.config import OrchestratorSettings, RerankerMethodName
from services.orchestrator.domain import RecommendQuery
from services.orchestrator.switches import METHODS, StageSwitches, WatchedFile

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KNOBS = (
    "method",
    "tradeoff",
    "max_per_category",
    "candidate_count",
    "ranker_enabled",
    "ranking_model",
)


class Variant(BaseModel):
    """One arm: its share of the traffic and the settings it changes (unset: unchanged)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    share: float = Field(gt=0.0, le=1.0)
    method: RerankerMethodName | None = None
    tradeoff: float | None = Field(None, ge=0.0, le=1.0)
    max_per_category: int | None = Field(None, ge=0)
    candidate_count: int | None = Field(None, ge=1)
    ranker_enabled: bool | None = None
    # A learned ranking model version on the ranker ("none": the fixed blend instead).
    ranking_model: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

    @property
    def knobs(self) -> set[str]:
        return {k for k in KNOBS if getattr(self, k) is not None}


class Experiment(BaseModel):
    """Variants by traffic share; the shares add up to at most 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    salt: str = Field(min_length=8, max_length=128)
    variants: tuple[Variant, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name!r} repeats a variant name")
        total = sum(v.share for v in self.variants)
        if total > 1.0 + 1e-9:
            raise ValueError(f"experiment {self.name!r}: variant shares add up to {total:g} > 1")
        return self

    def bucket(self, pseudonym: str) -> float:
        """The pseudonym's point of [0, 1) in this experiment."""
        digest = hashlib.sha256(f"{self.salt}\x00{pseudonym}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def assign(self, pseudonym: str) -> Variant | None:
        """The pseudonym's variant, None when its point lies past the last share."""
        point = self.bucket(pseudonym)
        edge = 0.0
        for variant in self.variants:
            edge += variant.share
            if point < edge:
                return variant
        return None


class ExperimentsConfig(BaseModel):
    """The experiments file: a version (reported in answers) and the experiments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=64)
    experiments: tuple[Experiment, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Self:
        names: set[str] = set()
        salts: set[str] = set()
        owner: dict[str, str] = {}  # knob -> the experiment that sets it
        for exp in self.experiments:
            if exp.name in names:
                raise ValueError(f"experiment {exp.name!r} is defined twice")
            if exp.salt in salts:
                raise ValueError(f"experiment {exp.name!r} reuses another experiment's salt")
            names.add(exp.name)
            salts.add(exp.salt)
            for knob in sorted(set().union(*(v.knobs for v in exp.variants))):
                if knob in owner:
                    raise ValueError(
                        f"experiments {owner[knob]!r} and {exp.name!r} both set {knob!r}"
                    )
                owner[knob] = exp.name
        return self


NO_EXPERIMENTS = ExperimentsConfig(version="none")


@dataclass(frozen=True)
class Assignment:
    """The variant one shopper is in for one experiment."""

    experiment: str
    variant: Variant


def assign(config: ExperimentsConfig, pseudonym: str) -> list[Assignment]:
    """Every experiment the pseudonym is in, with its variant, in configuration order."""
    out = []
    for exp in config.experiments:
        variant = exp.assign(pseudonym)
        if variant is not None:
            out.append(Assignment(exp.name, variant))
    return out


def apply(
    assignments: Sequence[Assignment], query: RecommendQuery, switches: StageSwitches
) -> tuple[RecommendQuery, StageSwitches]:
    """The query and switches this shopper is served with under ``assignments``."""
    q: dict[str, object] = {}
    s: dict[str, object] = {}
    for a in assignments:
        v = a.variant
        if v.method is not None:
            q["method"] = METHODS[v.method]
        if v.tradeoff is not None:
            q["tradeoff"] = v.tradeoff
        if v.max_per_category is not None:
            q["max_per_category"] = v.max_per_category
        if v.candidate_count is not None:
            s["candidate_count"] = v.candidate_count
        if v.ranker_enabled is not None:
            s["ranker_enabled"] = v.ranker_enabled
        if v.ranking_model is not None:
            s["ranking_model"] = v.ranking_model
    return (
        dataclasses.replace(query, **q),  # type: ignore[arg-type]
        dataclasses.replace(switches, **s),  # type: ignore[arg-type]
    )


class ExperimentBoard(WatchedFile[ExperimentsConfig]):
    """The current ExperimentsConfig from ``experiments_file`` (none when unset or absent)."""

    def __init__(
        self, settings: OrchestratorSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(
            settings.experiments_file,
            settings.experiments_poll_s,
            ExperimentsConfig.model_validate,
            NO_EXPERIMENTS,
            what="experiments",
            label=lambda c: f"{c.version} ({len(c.experiments)} experiments)",
            clock=clock,
        )
