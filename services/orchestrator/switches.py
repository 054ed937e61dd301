"""Stage switches that change without a restart: ranker on/off, default reranker method,
candidate count.

The settings give the values at start; ``switches_file`` (a JSON object, typically a
ConfigMap key mounted as a file) overrides any of them and is re-read when it changes, at
most every ``switches_poll_s`` seconds, checked on the request path (one ``stat``). A file
that is missing, unreadable or invalid leaves the last good values in force and is logged:
an operator's typo must not take the service down. Every answer carries the values it was
served with in ``versions["stage_switches"]``.

Example overrides file, for an incident where the ranker must be bypassed::

    {"ranker_enabled": false, "default_reranker_method": "mmr", "candidate_count": 50}
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from services.orchestrator.config import OrchestratorSettings, RerankerMethodName
from services.orchestrator.domain import RerankMethod

log = logging.getLogger(__name__)
T = TypeVar("T")

METHODS: dict[RerankerMethodName, RerankMethod] = {
    "unspecified": RerankMethod.UNSPECIFIED,
    "none": RerankMethod.NONE,
    "mmr": RerankMethod.MMR,
    "dpp": RerankMethod.DPP,
}


@dataclass(frozen=True)
class StageSwitches:
    """The values one request is served with."""

    ranker_enabled: bool
    default_reranker_method: RerankMethod
    candidate_count: int
    # The learned ranking model the ranker applies: "" its default; set by experiment variants.
    ranking_model: str = ""

    @classmethod
    def from_settings(cls, settings: OrchestratorSettings) -> StageSwitches:
        return cls(
            ranker_enabled=settings.ranker_enabled,
            default_reranker_method=METHODS[settings.default_reranker_method],
            candidate_count=settings.candidate_count,
        )

    @property
    def label(self) -> str:
        """The value of ``versions["stage_switches"]``."""
        return (
            f"ranker={'on' if self.ranker_enabled else 'off'};"
            f"reranker_method={self.default_reranker_method.value};"
            f"candidates={self.candidate_count}"
            + (f";ranking_model={self.ranking_model}" if self.ranking_model else "")
        )


class SwitchOverrides(BaseModel):
    """The overrides file: every key optional, unknown keys refused (a misspelt switch
    silently ignored is worse than one refused)."""

    model_config = ConfigDict(extra="forbid")

    ranker_enabled: bool | None = None
    default_reranker_method: RerankerMethodName | None = None
    candidate_count: int | None = Field(None, ge=1)

    def apply(self, base: StageSwitches) -> StageSwitches:
        changes: dict[str, object] = {}
        if self.ranker_enabled is not None:
            changes["ranker_enabled"] = self.ranker_enabled
        if self.default_reranker_method is not None:
            changes["default_reranker_method"] = METHODS[self.default_reranker_method]
        if self.candidate_count is not None:
            changes["candidate_count"] = self.candidate_count
        return replace(base, **changes)  # type: ignore[arg-type]


class WatchedFile(Generic[T]):
    """A JSON file re-read when it changes, parsed into a value; the one hot-reload mechanism
    of the orchestrator (stage switches, experiments).

    ``parse`` turns the decoded JSON into the value or raises ValueError (pydantic's
    ValidationError is one). Checked on the request path at most every ``poll_s`` seconds
    (one ``stat``). A missing file gives ``default``; an unreadable or invalid one keeps the
    last good value, logs why and keeps the reason in ``error`` until a good file arrives.
    """

    def __init__(
        self,
        path: str | None,
        poll_s: float,
        parse: Callable[[Any], T],
        default: T,
        *,
        what: str,
        label: Callable[[T], str] = str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(path) if path else None
        self._poll_s = poll_s
        self._parse = parse
        self._default = default
        self._what = what
        self._label = label
        self._clock = clock
        self._current = default
        self._seen: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self.error: str | None = None
        self.reload()

    def __call__(self) -> T:
        if self._path is not None and self._clock() - self._checked_at >= self._poll_s:
            self.reload()
        return self._current

    def reload(self) -> bool:
        """Re-read the file if it changed; True when the value changed."""
        self._checked_at = self._clock()
        if self._path is None:
            return False
        try:
            # A ConfigMap update swaps a symlink: stat follows it, so inode or size or
            # mtime changes even when the mtime granularity would hide a quick edit.
            st = self._path.stat()
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            self.error = f"{self._what} file unreadable: {type(exc).__name__}"
            log.warning(f"{self._what} file unreadable", extra={"error": type(exc).__name__})
            return False
        else:
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._seen:
            return False
        self._seen = stamp
        if stamp is None:
            new = self._default  # the file was removed: back to the default
        else:
            try:
                new = self._parse(json.loads(self._path.read_text()))
            except (OSError, ValueError) as exc:
                # The reason names the bad key or value of the operator's file, never a
                # request's data.
                self.error = f"{self._what} file invalid: {exc}"
                log.warning(
                    f"{self._what} file invalid; keeping the last good values",
                    extra={"error": type(exc).__name__, "detail": str(exc)},
                )
                return False
        self.error = None
        changed = new != self._current
        if changed:
            log.warning(f"{self._what} changed", extra={"value": self._label(new)})
        self._current = new
        return changed


class SwitchBoard(WatchedFile[StageSwitches]):
    """The current StageSwitches: the settings' values, overlaid with the overrides file."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        base = StageSwitches.from_settings(settings)
        super().__init__(
            settings.switches_file,
            settings.switches_poll_s,
            lambda data: SwitchOverrides.model_validate(data).apply(base),
            base,
            what="stage switches",
            label=lambda s: s.label,
            clock=clock,
        )
