"""Page tokens: "show me more" without repeating what earlier pages showed.

Stateless and signed. A token carries the ids every earlier page of the lineage showed, the
page number, a random lineage id (shared by every page of one first request), the expiry and a
keyed digest of the request it belongs to; it is compressed JSON followed by an HMAC-SHA256
over it with the orchestrator's page-token key, base64url encoded. The next page is a fresh
run of the pipeline with those ids excluded (on every path, fallbacks included), so it needs
no server state, survives a restart and any replica answers it, and a degraded stage on page
2 still never repeats page 1.

Bounds: at most ``max_shown`` ids (no further token once reached, so a token stays a few KB),
``ttl_s`` seconds of life. Checked in this order, each a clear InvalidPageToken: too long,
malformed, signature (tampered, or another key), expired, and a digest that does not match
the request (another shopper, other filters or diversity settings; only k may change).
The digest is keyed, so a token does not reveal the user reference it is bound to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.orchestrator.domain import RecommendQuery

TOKEN_FORMAT = 1
MAC_BYTES = 32
# Longest token accepted before any decoding: ids of max_shown items compress well below it.
MAX_TOKEN_CHARS = 64 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024


class InvalidPageToken(ValueError):
    """A page token that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Page:
    """Where a request stands in its lineage: ids already shown, page number (0 = first)."""

    lineage: str
    number: int = 0
    shown_item_ids: tuple[str, ...] = ()


class PageTokens:
    """Issues and checks page tokens with one key; ``clock`` is Unix seconds."""

    def __init__(
        self,
        key: bytes,
        ttl_s: float,
        max_shown: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the page-token key must have at least 16 bytes")
        self._key = key
        self._ttl_s = ttl_s
        self.max_shown = max_shown
        self._clock = clock

    def _digest(self, request_binding: str) -> str:
        return hmac.new(self._key, b"bind:" + request_binding.encode(), hashlib.sha256).hexdigest()[
            :32
        ]

    def first_page(self) -> Page:
        return Page(lineage=secrets.token_hex(8))

    def next_token(self, page: Page, new_ids: Sequence[str], request_binding: str) -> str:
        """The token of the page after ``page``, which showed ``new_ids``; "" when the lineage
        has shown ``max_shown`` items (no deeper paging)."""
        shown = list(dict.fromkeys([*page.shown_item_ids, *new_ids]))
        if len(shown) > self.max_shown:
            return ""
        payload = {
            "v": TOKEN_FORMAT,
            "l": page.lineage,
            "p": page.number + 1,
            "e": int(self._clock() + self._ttl_s),
            "b": self._digest(request_binding),
            "s": shown,
        }
        body = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 9)
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def read(self, token: str, request_binding: str) -> Page:
        """The page a token asks for, or InvalidPageToken."""
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidPageToken(f"page_token is longer than {MAX_TOKEN_CHARS} characters")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidPageToken("page_token is not a token this service issued") from None
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        expected = hmac.new(self._key, body, hashlib.sha256).digest()
        if len(raw) <= MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise InvalidPageToken(
                "page_token was altered or signed with another key; start again without it"
            )
        try:
            # Signed by us, so it is our own bounded payload; the cap is a second guard.
            text = zlib.decompressobj().decompress(body, MAX_PAYLOAD_BYTES)
            payload = json.loads(text)
            version, lineage, number = payload["v"], str(payload["l"]), int(payload["p"])
            expires, binding = int(payload["e"]), str(payload["b"])
            shown = tuple(str(i) for i in payload["s"])
        except (zlib.error, ValueError, KeyError, TypeError):
            raise InvalidPageToken("page_token is not a token this service issued") from None
        if version != TOKEN_FORMAT:
            raise InvalidPageToken("page_token has an unknown format; start again without it")
        if self._clock() > expires:
            raise InvalidPageToken(
                "page_token has expired; start again without it for a fresh first page"
            )
        if not hmac.compare_digest(binding, self._digest(request_binding)):
            raise InvalidPageToken(
                "page_token belongs to another request: keep every field but k as on the first page"
            )
        return Page(lineage=lineage, number=number, shown_item_ids=shown)


def request_binding(query: RecommendQuery) -> str:
    """What a page token is bound to: every field of the request but k (and the token)."""
    return json.dumps(
        [
            query.user_ref,
            query.method.value,
            query.tradeoff,
            query.max_per_category,
            sorted(query.excluded_item_ids),
            query.exclude_purchased,
            query.filters.describe(),
        ]
    )
