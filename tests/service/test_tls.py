"""Transport security between services: TLS and mutual TLS on a real grpc.aio server, with
certificates from a throwaway CA made in the test (shared.server + shared.channels).

The calls are health checks: they cross the same TLS handshake as every service RPC.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.channels import TlsClientConfig, create_channel
from shared.server import GrpcServer, server_credentials
from shared.settings import ServiceSettings

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


class Authority:
    """A CA that issues short-lived leaf certificates into a directory."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / f"{name}-ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        common_name: str,
        *,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
    ) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = self.directory / f"{self.name}-{common_name}"
        pair = Pair(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return pair


@dataclass(frozen=True)
class Pki:
    ca: Authority
    rogue: Authority
    server: Pair
    named_server: Pair
    client: Pair
    rogue_client: Pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority(directory, "recsys")
    rogue = Authority(directory, "rogue")
    client_auth = ExtendedKeyUsageOID.CLIENT_AUTH
    return Pki(
        ca=ca,
        rogue=rogue,
        server=ca.issue("loopback", ips=("127.0.0.1",)),
        # As in the cluster: the certificate names the Service, not the address dialled.
        named_server=ca.issue("feature-store", dns=("feature-store", "feature-store.recsys.svc")),
        client=ca.issue("orchestrator", usage=client_auth),
        rogue_client=rogue.issue("intruder", usage=client_auth),
    )


async def _server(settings: ServiceSettings) -> AsyncIterator[GrpcServer]:
    server = GrpcServer(settings, [])
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


@pytest.fixture
async def tls_server(pki: Pki) -> AsyncIterator[GrpcServer]:
    settings = ServiceSettings(
        port=0, tls_cert_file=str(pki.server.cert), tls_key_file=str(pki.server.key)
    )
    async for server in _server(settings):
        yield server


@pytest.fixture
async def mtls_server(pki: Pki) -> AsyncIterator[GrpcServer]:
    settings = ServiceSettings(
        port=0,
        tls_cert_file=str(pki.server.cert),
        tls_key_file=str(pki.server.key),
        tls_client_ca_file=str(pki.ca.ca_file),
    )
    async for server in _server(settings):
        yield server


async def _liveness(target: str, tls: TlsClientConfig | None) -> int:
    async with create_channel(target, tls=tls, max_attempts=1) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="liveness"), timeout=5
        )
        return int(reply.status)


async def _refused(target: str, tls: TlsClientConfig | None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _liveness(target, tls)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    return err.value


# ---- TLS: the server proves who it is --------------------------------------------------------


async def test_tls_call_succeeds_with_the_ca(pki: Pki, tls_server: GrpcServer) -> None:
    target = f"127.0.0.1:{tls_server.port}"
    assert await _liveness(target, TlsClientConfig(ca_file=str(pki.ca.ca_file))) == SERVING


async def test_client_trusting_another_ca_fails(pki: Pki, tls_server: GrpcServer) -> None:
    target = f"127.0.0.1:{tls_server.port}"
    await _refused(target, TlsClientConfig(ca_file=str(pki.rogue.ca_file)))


async def test_plaintext_client_cannot_talk_to_a_tls_server(tls_server: GrpcServer) -> None:
    await _refused(f"127.0.0.1:{tls_server.port}", None)


async def test_service_name_certificate_needs_the_matching_name(pki: Pki) -> None:
    """A certificate for the Kubernetes Service name verifies only under that name."""
    settings = ServiceSettings(
        port=0, tls_cert_file=str(pki.named_server.cert), tls_key_file=str(pki.named_server.key)
    )
    async for server in _server(settings):
        target = f"127.0.0.1:{server.port}"
        ca = str(pki.ca.ca_file)
        named = TlsClientConfig(ca_file=ca, server_name_override="feature-store")
        assert await _liveness(target, named) == SERVING
        await _refused(target, TlsClientConfig(ca_file=ca))
        wrong = TlsClientConfig(ca_file=ca, server_name_override="ranker")
        await _refused(target, wrong)


# ---- mTLS: the client proves who it is too ---------------------------------------------------


async def test_mtls_client_with_a_ca_certificate_is_served(
    pki: Pki, mtls_server: GrpcServer
) -> None:
    tls = TlsClientConfig(
        ca_file=str(pki.ca.ca_file), cert_file=str(pki.client.cert), key_file=str(pki.client.key)
    )
    assert await _liveness(f"127.0.0.1:{mtls_server.port}", tls) == SERVING


async def test_mtls_client_without_a_certificate_is_refused(
    pki: Pki, mtls_server: GrpcServer
) -> None:
    await _refused(f"127.0.0.1:{mtls_server.port}", TlsClientConfig(ca_file=str(pki.ca.ca_file)))


async def test_mtls_client_with_a_foreign_certificate_is_refused(
    pki: Pki, mtls_server: GrpcServer
) -> None:
    tls = TlsClientConfig(
        ca_file=str(pki.ca.ca_file),
        cert_file=str(pki.rogue_client.cert),
        key_file=str(pki.rogue_client.key),
    )
    await _refused(f"127.0.0.1:{mtls_server.port}", tls)


# ---- configuration errors --------------------------------------------------------------------


async def test_health_port_answers_plaintext_probes_and_nothing_else(pki: Pki) -> None:
    """Kubelet's gRPC probes cannot present a client certificate: the extra plaintext port
    answers them with the main port's status, while the main port still refuses plaintext and
    the extra port serves no other service (reflection included)."""
    settings = ServiceSettings(
        port=0,
        health_port=0,
        tls_cert_file=str(pki.server.cert),
        tls_key_file=str(pki.server.key),
        tls_client_ca_file=str(pki.ca.ca_file),
    )
    async for server in _server(settings):
        assert server.health_port not in (0, server.port)
        probe = f"127.0.0.1:{server.health_port}"
        assert await _liveness(probe, None) == SERVING
        async with create_channel(probe, max_attempts=1) as channel:
            ready = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
            assert ready.status == health_pb2.HealthCheckResponse.NOT_SERVING
            await server.set_ready(True)
            ready = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
            assert ready.status == SERVING
            reflect = channel.unary_unary("/grpc.reflection.v1alpha.ServerReflection/Nothing")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await reflect(b"", timeout=5)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        await _refused(f"127.0.0.1:{server.port}", None)


def test_certificate_without_key_is_a_configuration_error(pki: Pki) -> None:
    with pytest.raises(ValueError, match="tls_key_file"):
        server_credentials(ServiceSettings(tls_cert_file=str(pki.server.cert)))


def test_missing_certificate_file_fails_at_start(pki: Pki, tmp_path: Path) -> None:
    settings = ServiceSettings(
        tls_cert_file=str(tmp_path / "absent.crt"), tls_key_file=str(pki.server.key)
    )
    with pytest.raises(FileNotFoundError):
        server_credentials(settings)


def test_no_certificate_means_plaintext() -> None:
    assert server_credentials(ServiceSettings()) is None


def test_missing_client_ca_file_fails_before_dialling(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        create_channel("127.0.0.1:1", tls=TlsClientConfig(ca_file=str(tmp_path / "none.pem")))


@pytest.mark.parametrize("field", ["tls_key_file", "tls_client_ca_file"])
def test_tls_parts_without_a_certificate_do_not_fall_back_to_plaintext(
    pki: Pki, field: str
) -> None:
    settings = ServiceSettings(**{field: str(pki.ca.ca_file)})
    with pytest.raises(ValueError, match="tls_cert_file is required"):
        server_credentials(settings)


@pytest.mark.parametrize("part", ["cert_file", "key_file"])
def test_half_a_client_certificate_is_a_configuration_error(pki: Pki, part: str) -> None:
    given = {"cert_file": str(pki.client.cert), "key_file": str(pki.client.key)}
    tls = TlsClientConfig(ca_file=str(pki.ca.ca_file), **{part: given[part]})
    with pytest.raises(ValueError, match="both cert_file and key_file"):
        create_channel("127.0.0.1:1", tls=tls)


# ---- the orchestrator's outbound channels ----------------------------------------------------


async def test_orchestrator_calls_a_real_reranker_over_mtls(pki: Pki) -> None:
    """Every Downstreams channel takes the RECSYS_ORCHESTRATOR_DOWNSTREAM_TLS_* settings: a
    real Rerank RPC to a reranker that requires client certificates."""
    from services.orchestrator.clients import Downstreams
    from services.orchestrator.config import OrchestratorSettings
    from services.orchestrator.domain import RerankCandidate, RerankMethod, RerankRequest
    from services.orchestrator.downstream import DownstreamError
    from services.reranker.app import build_reranker
    from services.reranker.config import RerankerSettings

    settings = RerankerSettings(  # type: ignore[call-arg]
        port=0,
        grace_period_s=0.2,
        tls_cert_file=str(pki.server.cert),
        tls_key_file=str(pki.server.key),
        tls_client_ca_file=str(pki.ca.ca_file),
    )
    request = RerankRequest(
        candidates=tuple(
            RerankCandidate(item_id=f"i{n}", relevance=1.0 - n / 10, embedding=(1.0, float(n)))
            for n in range(5)
        ),
        k=3,
        method=RerankMethod.MMR,
        tradeoff=0.5,
    )
    async with build_reranker(settings) as reranker:
        target = f"127.0.0.1:{reranker.port}"
        secure = Downstreams(
            OrchestratorSettings(  # type: ignore[call-arg]
                reranker_addr=target,
                downstream_max_attempts=1,
                downstream_tls_ca_file=str(pki.ca.ca_file),
                downstream_tls_cert_file=str(pki.client.cert),
                downstream_tls_key_file=str(pki.client.key),
            )
        )
        plain = Downstreams(
            OrchestratorSettings(reranker_addr=target, downstream_max_attempts=1)  # type: ignore[call-arg]
        )
        try:
            reply = await secure.rerank(request, 5)
            assert len(reply.items) == 3
            assert reply.items[0].item_id == "i0"
            assert reply.method is RerankMethod.MMR
            with pytest.raises(DownstreamError) as err:
                await plain.rerank(request, 5)
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
        finally:
            await secure.close()
            await plain.close()


def test_orchestrator_half_a_client_certificate_is_refused(pki: Pki) -> None:
    from services.orchestrator.clients import downstream_tls
    from services.orchestrator.config import OrchestratorSettings

    with pytest.raises(ValueError, match="go together"):
        downstream_tls(
            OrchestratorSettings(  # type: ignore[call-arg]
                downstream_tls_ca_file=str(pki.ca.ca_file),
                downstream_tls_cert_file=str(pki.client.cert),
            )
        )
    with pytest.raises(ValueError, match="needs downstream_tls_ca_file"):
        downstream_tls(
            OrchestratorSettings(  # type: ignore[call-arg]
                downstream_tls_cert_file=str(pki.client.cert),
                downstream_tls_key_file=str(pki.client.key),
            )
        )
    assert downstream_tls(OrchestratorSettings()) is None  # type: ignore[call-arg]
