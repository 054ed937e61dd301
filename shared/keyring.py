"""Keyed pseudonyms: HMAC-SHA256 (RFC 2104) of the raw user reference under a versioned secret.

A pseudonym is ``<key_version>.<64 hex digits>``. Without the secret, the mapping cannot be
recomputed from a guessed id (unlike a plain hash, which anyone can brute-force over the small
space of account numbers), and no table from raw id to pseudonym is ever stored: the raw id is
needed to recompute it. The version prefix lets several keys coexist during a rotation; a
retired version still verifies for ``grace_window`` after its retirement, then stops.

The key ring is a JSON document (a file in development, a Kubernetes Secret mounted as that
file in production)::

    {"active": "v2",
     "versions": [{"version": "v1", "secret": "<base64, >= 32 bytes>",
                   "created_at": "2026-01-01T00:00:00+00:00",
                   "retired_at": "2026-06-01T00:00:00+00:00"},
                  {"version": "v2", "secret": "...", "created_at": "...", "retired_at": null}]}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MIN_SECRET_BYTES = 32
_VERSION = re.compile(r"^[a-z0-9]{1,16}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class KeyRingError(ValueError):
    """The key ring document is malformed or inconsistent."""


@dataclass(frozen=True)
class KeyVersion:
    """One secret of the ring; ``retired_at`` is set when a newer version became active."""

    version: str
    secret: bytes = field(repr=False)
    created_at: datetime
    retired_at: datetime | None = None

    def __post_init__(self) -> None:
        if not _VERSION.match(self.version):
            raise KeyRingError("key version must be 1-16 lower-case letters or digits")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise KeyRingError(f"key {self.version} is shorter than {MIN_SECRET_BYTES} bytes")
        for stamp in (self.created_at, self.retired_at):
            if stamp is not None and stamp.tzinfo is None:
                raise KeyRingError(f"key {self.version} has a time without a time zone")

    def digest(self, user_ref: str) -> str:
        return hmac.new(self.secret, user_ref.encode("utf-8"), hashlib.sha256).hexdigest()


class KeyRing:
    """The versions of the pseudonymization key, one of them active."""

    def __init__(
        self,
        versions: Sequence[KeyVersion],
        active: str,
        *,
        grace_window: timedelta = timedelta(days=7),
        clock: Clock = utc_now,
    ) -> None:
        by_version = {v.version: v for v in versions}
        if len(by_version) != len(versions):
            raise KeyRingError("key versions must be unique")
        if active not in by_version:
            raise KeyRingError("the active key version is not in the ring")
        if by_version[active].retired_at is not None:
            raise KeyRingError("the active key version is retired")
        if any(v.retired_at is None for v in versions if v.version != active):
            raise KeyRingError("every key version but the active one needs retired_at")
        if len({v.secret for v in versions}) != len(versions):
            raise KeyRingError("two key versions share a secret")
        self._versions = by_version
        self._active = by_version[active]
        self.grace_window = grace_window
        self._clock = clock

    @property
    def active_version(self) -> str:
        return self._active.version

    @property
    def versions(self) -> list[KeyVersion]:
        return list(self._versions.values())

    def pseudonymize(self, user_ref: str) -> str:
        """The pseudonym of ``user_ref`` under the active key."""
        return f"{self._active.version}.{self._active.digest(user_ref)}"

    def pseudonym_under(self, user_ref: str, version: str) -> str:
        """The pseudonym under a given version, for re-keying stored data."""
        key = self._versions.get(version)
        if key is None:
            raise KeyRingError(f"unknown key version {version!r}")
        return f"{version}.{key.digest(user_ref)}"

    def verifies(self, version: str) -> bool:
        """Whether pseudonyms of ``version`` are still accepted now."""
        key = self._versions.get(version)
        if key is None:
            return False
        if key.retired_at is None:
            return True
        return self._clock() < key.retired_at + self.grace_window

    def verify(self, user_ref: str, pseudonym: str) -> bool:
        """Whether ``pseudonym`` belongs to ``user_ref`` under a version that still verifies.

        The comparison is constant-time so response timing does not reveal how many leading
        characters of a guessed pseudonym were right.
        """
        version, _, digest = pseudonym.partition(".")
        if not _DIGEST.match(digest) or not self.verifies(version):
            return False
        expected = self._versions[version].digest(user_ref)
        return hmac.compare_digest(expected, digest)

    def rotated(self, *, token_bytes: Callable[[int], bytes] = secrets.token_bytes) -> KeyRing:
        """A new ring whose fresh version is active; the old active one is retired now."""
        now = self._clock()
        numbers = [int(v[1:]) for v in self._versions if re.fullmatch(r"v\d+", v)]
        new_version = f"v{max(numbers, default=0) + 1}"
        versions = [
            replace(v, retired_at=now) if v.version == self._active.version else v
            for v in self._versions.values()
        ]
        versions.append(KeyVersion(new_version, token_bytes(MIN_SECRET_BYTES), now))
        return KeyRing(versions, new_version, grace_window=self.grace_window, clock=self._clock)

    def pruned(self) -> KeyRing:
        """A ring without the versions whose grace window has ended."""
        keep = [v for v in self._versions.values() if self.verifies(v.version)]
        return KeyRing(keep, self.active_version, grace_window=self.grace_window, clock=self._clock)

    @classmethod
    def generate(
        cls,
        *,
        grace_window: timedelta = timedelta(days=7),
        clock: Clock = utc_now,
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> KeyRing:
        """A ring with one fresh active version ``v1``."""
        first = KeyVersion("v1", token_bytes(MIN_SECRET_BYTES), clock())
        return cls([first], "v1", grace_window=grace_window, clock=clock)

    def to_json(self) -> str:
        document = {
            "active": self.active_version,
            "versions": [
                {
                    "version": v.version,
                    "secret": base64.b64encode(v.secret).decode("ascii"),
                    "created_at": v.created_at.isoformat(),
                    "retired_at": v.retired_at.isoformat() if v.retired_at else None,
                }
                for v in self._versions.values()
            ],
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(
        cls, text: str, *, grace_window: timedelta = timedelta(days=7), clock: Clock = utc_now
    ) -> KeyRing:
        try:
            document = json.loads(text)
            active = document["active"]
            versions = [_parse_version(entry) for entry in document["versions"]]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise KeyRingError(f"key ring is not valid: {type(exc).__name__}") from None
        if not isinstance(active, str):
            raise KeyRingError("key ring 'active' must be a string")
        return cls(versions, active, grace_window=grace_window, clock=clock)


def _parse_version(entry: dict[str, Any]) -> KeyVersion:
    try:
        secret = base64.b64decode(entry["secret"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise KeyRingError("a key secret is not valid base64") from None
    retired = entry.get("retired_at")
    try:
        return KeyVersion(
            version=str(entry["version"]),
            secret=secret,
            created_at=datetime.fromisoformat(entry["created_at"]),
            retired_at=datetime.fromisoformat(retired) if retired else None,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, KeyRingError):
            raise
        raise KeyRingError("a key time is not an ISO 8601 timestamp") from None


def load_key_ring(
    path: Path | str, *, grace_window: timedelta = timedelta(days=7), clock: Clock = utc_now
) -> KeyRing:
    """Read a key ring file; a missing file is a FileNotFoundError naming the path."""
    return KeyRing.from_json(
        Path(path).read_text(encoding="utf-8"), grace_window=grace_window, clock=clock
    )


def save_key_ring(ring: KeyRing, path: Path | str) -> None:
    """Write the ring readable by its owner only, atomically so readers never see half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(ring.to_json())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ReloadingKeyRing:
    """The key ring of a file, re-read on demand when its content changed.

    A Kubernetes Secret update replaces the mounted file without a restart; ``reload`` (called
    periodically by the server) picks the new ring up. A file that no longer parses keeps the
    previous ring in service and raises, so a bad edit never takes pseudonymization down.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        grace_window: timedelta = timedelta(days=7),
        clock: Clock = utc_now,
    ) -> None:
        self._path = Path(path)
        self._grace_window = grace_window
        self._clock = clock
        self._text = self._path.read_text(encoding="utf-8")
        self._ring = KeyRing.from_json(self._text, grace_window=grace_window, clock=clock)

    def __call__(self) -> KeyRing:
        return self._ring

    def reload(self) -> bool:
        """Re-read the file; True when a changed, valid ring was installed."""
        text = self._path.read_text(encoding="utf-8")
        if text == self._text:
            return False
        ring = KeyRing.from_json(text, grace_window=self._grace_window, clock=self._clock)
        self._ring, self._text = ring, text
        return True
