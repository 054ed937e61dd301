"""Who is calling: the names in a gRPC peer's verified client certificate, and the
deny-by-default check that reserves a service's privileged methods for an allowlist of them.

The feature store reserves its raw aggregates for the privacy gateway, and the gateway
reserves ``ReleaseAggregates`` for the DP release job, with this one check. A denial is
logged and recorded on the span with the method and whether a certificate was presented, never
the caller's address or names (a certificate may carry anything its issuer put in it).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

import grpc
from opentelemetry import trace

from shared.errors import PermissionDenied

log = logging.getLogger(__name__)


def peer_names(context: grpc.aio.ServicerContext) -> set[str]:
    """Names in the caller's verified client certificate (empty without mTLS)."""
    auth = context.auth_context()
    values = [*auth.get("x509_common_name", []), *auth.get("x509_subject_alternative_name", [])]
    return {v.decode("utf-8", "replace") for v in values}


def is_loopback_peer(peer: str) -> bool:
    """True for a gRPC peer string on the loopback interface (``ipv4:127.0.0.1:5000``,
    ``ipv6:[::1]:5000``); anything else, unix sockets and unparsable peers included, is not."""
    family, _, rest = peer.partition(":")
    if family == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif family == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]")
    else:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_mtls_for(callers: Iterable[str], client_ca_file: str | None) -> None:
    """Settings check: an allowlist of certificate names means nothing without mTLS."""
    if list(callers) and not client_ca_file:
        raise ValueError(
            "privileged_callers needs mTLS: set tls_client_ca_file (and the server certificate)"
        )


class PrivilegedCallers:
    """Deny by default: only a caller whose verified client certificate names one of
    ``allowed`` passes, and an empty list denies everyone. ``dev_allow_loopback`` adds callers
    on the loopback interface without a certificate (local stack, tests), with a warning at
    start and on every call it grants."""

    def __init__(
        self,
        allowed: Iterable[str],
        *,
        dev_allow_loopback: bool,
        denied_message: str,
        methods: str,
    ) -> None:
        self._allowed = frozenset(allowed)
        self._dev_allow_loopback = dev_allow_loopback
        self._denied_message = denied_message
        if dev_allow_loopback:
            log.warning(
                f"DEVELOPMENT MODE: loopback callers may use {methods} without a certificate "
                "(dev_allow_loopback_privileged)"
            )
        elif not self._allowed:
            log.warning(f"no privileged_callers: every caller is refused {methods}")

    def require(self, context: grpc.aio.ServicerContext, method: str) -> None:
        """Return if the caller may use ``method``, else raise PERMISSION_DENIED."""
        names = peer_names(context)
        if self._allowed and names & self._allowed:
            return
        if self._dev_allow_loopback and is_loopback_peer(context.peer()):
            log.warning(
                "privileged method granted to a loopback caller without a certificate "
                "(dev_allow_loopback_privileged is on; never in a cluster)",
                extra={"method": method},
            )
            return
        reason = "certificate_not_allowed" if names else "no_client_certificate"
        span = trace.get_current_span()
        span.set_attributes({"auth.denied": True, "auth.denied_reason": reason})
        span.add_event("permission denied", {"rpc.method": method, "auth.reason": reason})
        log.warning("privileged method denied", extra={"method": method, "reason": reason})
        raise PermissionDenied(self._denied_message)
