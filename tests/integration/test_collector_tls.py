"""TLS and mutual TLS on the collector's receivers, with real exporters and the app's clients.

Certificates come from a throwaway CA (trustme) for 127.0.0.1. The real OpenTelemetry
exporters (gRPC and HTTP) send over TLS; a plaintext client, a client that does not trust the
CA, and (with mutual TLS) a client without a certificate are refused; an app instrumented by
AgentMesh reaches an ``https://`` collector from the standard OTLP certificate variables, for
its spans and for its control long poll.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import grpc
import pytest
import trustme
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.cli import main
from agentmesh.collector.receiver.tls import ServerTls
from agentmesh.core import ConfigError
from agentmesh.instrumentation.control import ControlClient


class _Pki:
    """A CA, the collector's certificate, and a client certificate, as PEM files."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        client = self.ca.issue_cert("app.example")
        self.ca_file = folder / "ca.pem"
        self.cert_file = folder / "server.pem"
        self.key_file = folder / "server.key"
        self.client_file = folder / "client.pem"  # certificate and key
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        server.cert_chain_pems[0].write_to_path(str(self.cert_file))
        for pem in server.cert_chain_pems[1:]:
            pem.write_to_path(str(self.cert_file), append=True)
        server.private_key_pem.write_to_path(str(self.key_file))
        client.private_key_and_cert_chain_pem.write_to_path(str(self.client_file))

    def settings(self, tmp: Path, *, mutual: bool = False) -> CollectorSettings:
        return CollectorSettings.load(
            grpc_port=0,
            http_port=0,
            decode_workers=0,
            duckdb_path=tmp / "unused.duckdb",
            tls_cert_file=self.cert_file,
            tls_key_file=self.key_file,
            tls_client_ca_file=self.ca_file if mutual else None,
        )

    def client_context(self, *, with_certificate: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if with_certificate:
            context.load_cert_chain(str(self.client_file))
        return context


@pytest.fixture
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Pki:
    # requests (under the OTLP/HTTP exporter) lets these override the exporter's own CA file
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return _Pki(tmp_path)


def _export_one(exporter: SpanExporter, name: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("tls-test").start_as_current_span(name):
        pass
    provider.shutdown()


async def _stored_names(store: MemoryStore) -> set[str]:
    return {span.name for run in await store.runs() for span in await store.spans(run.trace_id)}


async def _plain_grpc_export(endpoint: str, credentials: grpc.ChannelCredentials | None) -> None:
    target = endpoint.removeprefix("https://")
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    async with channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        await stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5)


async def test_real_exporters_send_over_tls_and_plaintext_or_untrusting_clients_are_refused(
    pki: _Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MemoryStore()
    async with Collector(pki.settings(tmp_path), store) as collector:
        assert collector.endpoint.startswith("https://")
        assert collector.http_endpoint.startswith("https://")
        ca = pki.ca_file.read_bytes()
        grpc_exporter = GrpcExporter(
            endpoint=collector.endpoint, credentials=grpc.ssl_channel_credentials(ca), timeout=10
        )
        http_exporter = HttpExporter(
            endpoint=collector.http_endpoint + "/v1/traces",
            certificate_file=str(pki.ca_file),
            timeout=10,
        )
        await asyncio.to_thread(_export_one, grpc_exporter, "over-grpc-tls")
        await asyncio.to_thread(_export_one, http_exporter, "over-http-tls")
        await collector.drain()
        assert await _stored_names(store) == {"over-grpc-tls", "over-http-tls"}

        with pytest.raises(grpc.aio.AioRpcError) as plaintext:
            await _plain_grpc_export(collector.endpoint, None)
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError):  # the system's CAs do not know ours
            await _plain_grpc_export(collector.endpoint, grpc.ssl_channel_credentials())

        api = collector.http_endpoint + "/v1/runs"
        async with aiohttp.ClientSession() as http:
            trusted = pki.client_context(with_certificate=False)
            async with http.get(api, ssl=trusted) as response:
                assert response.status == 200
                assert len((await response.json())["runs"]) == 2
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(api)
            with pytest.raises(aiohttp.ClientError):
                await http.get(api.replace("https://", "http://"))
        # the command line asks it over HTTPS with the CA of the OTLP variables
        command = ["runs", "--collector", collector.http_endpoint, "--json"]
        assert await asyncio.to_thread(main, command) == 2  # the system's CAs: refused
        assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(pki.ca_file))
        assert await asyncio.to_thread(main, command) == 0
        assert len(capsys.readouterr().out.splitlines()) == 2
        assert collector.stats.spans_received == 2  # nothing came in any other way


async def test_mutual_tls_needs_a_client_certificate_the_ca_signed(
    pki: _Pki, tmp_path: Path
) -> None:
    store = MemoryStore()
    async with Collector(pki.settings(tmp_path, mutual=True), store) as collector:
        ca = pki.ca_file.read_bytes()
        pem = pki.client_file.read_bytes()
        signed = grpc.ssl_channel_credentials(ca, private_key=pem, certificate_chain=pem)
        await _plain_grpc_export(collector.endpoint, signed)
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await _plain_grpc_export(collector.endpoint, grpc.ssl_channel_credentials(ca))
        assert anonymous.value.code() == grpc.StatusCode.UNAVAILABLE

        api = collector.http_endpoint + "/v1/runs"
        async with aiohttp.ClientSession() as http:
            async with http.get(api, ssl=pki.client_context(with_certificate=True)) as response:
                assert response.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with http.get(api, ssl=pki.client_context(with_certificate=False)) as bad:
                    await bad.read()


APP = textwrap.dedent(
    """
    from opentelemetry import trace

    from agentmesh.instrumentation import init

    init()
    with trace.get_tracer("tls-app").start_as_current_span("app-span-over-tls"):
        pass
    """
)


async def test_an_instrumented_app_reaches_an_https_collector_from_the_otlp_variables(
    pki: _Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    async with Collector(pki.settings(tmp_path, mutual=True), store) as collector:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMESH_"))}
        env.update(
            AGENTMESH_ENDPOINT=collector.endpoint,
            AGENTMESH_CONTROL_ENABLED="false",
            AGENTMESH_SHUTDOWN_TIMEOUT_S="30",  # the app exits at once: a loaded machine's budget
            OTEL_EXPORTER_OTLP_CERTIFICATE=str(pki.ca_file),
            OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=str(pki.client_file),
            OTEL_EXPORTER_OTLP_CLIENT_KEY=str(pki.client_file),
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", APP],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        await collector.drain()
        assert await _stored_names(store) == {"app-span-over-tls"}

        # the control long poll: same variables, over HTTPS (mutual TLS)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(pki.ca_file))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", str(pki.client_file))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", str(pki.client_file))
        client = ControlClient(collector.http_endpoint)
        await asyncio.to_thread(client.poll, long=False)
        assert client.stats.polls == 1
        assert client.stats.failures == 0
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
        with pytest.raises(OSError, match=r"(?i)ssl|certificate|reset|closed|EOF"):
            await asyncio.to_thread(ControlClient(collector.http_endpoint).poll, long=False)


async def test_tls_files_are_checked_before_anything_listens(pki: _Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="go together"):
        CollectorSettings.load(tls_cert_file=pki.cert_file)
    with pytest.raises(ConfigError, match="TLS_CLIENT_CA_FILE needs"):
        CollectorSettings.load(tls_client_ca_file=pki.ca_file)
    missing = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        tls_cert_file=tmp_path / "none.pem",
        tls_key_file=pki.key_file,
    )
    with pytest.raises(ConfigError, match=r"TLS_CERT_FILE=.*none\.pem: cannot read it"):
        async with Collector(missing, MemoryStore()):
            pass
    not_its_key = CollectorSettings.load(tls_cert_file=pki.ca_file, tls_key_file=pki.key_file)
    with pytest.raises(ConfigError, match="not a PEM certificate and its private key"):
        ServerTls.from_settings(not_its_key)


async def test_renewed_certificates_are_served_without_a_restart(pki: _Pki, tmp_path: Path) -> None:
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        decode_workers=0,
        duckdb_path=tmp_path / "unused.duckdb",
        tls_cert_file=pki.cert_file,
        tls_key_file=pki.key_file,
        tls_reload_seconds=0.05,
    )
    renewed = trustme.CA()  # the renewal comes from another CA, to tell the two apart
    renewed_ca = tmp_path / "renewed-ca.pem"
    renewed.cert_pem.write_to_path(str(renewed_ca))
    cas = {pki.ca_file: pki.ca.cert_pem.bytes(), renewed_ca: renewed.cert_pem.bytes()}
    store = MemoryStore()
    async with Collector(settings, store) as collector, aiohttp.ClientSession() as http:
        api = collector.http_endpoint + "/v1/runs"

        async def grpc_ok(ca: Path) -> bool:
            roots = cas[ca]
            try:
                await _plain_grpc_export(collector.endpoint, grpc.ssl_channel_credentials(roots))
            except grpc.aio.AioRpcError:
                return False
            return True

        async def https_ok(ca: Path) -> bool:
            try:
                async with http.get(api, ssl=ssl.create_default_context(cafile=str(ca))) as r:
                    return r.status == 200
            except aiohttp.ClientConnectorCertificateError:
                return False

        assert await grpc_ok(pki.ca_file)
        assert await https_ok(pki.ca_file)
        leaf = renewed.issue_cert(
            "127.0.0.1", "localhost"
        )  # rotated in place, as cert-manager does
        leaf.private_key_pem.write_to_path(str(pki.key_file))
        leaf.cert_chain_pems[0].write_to_path(str(pki.cert_file))
        await asyncio.sleep(0.1)
        assert await grpc_ok(renewed_ca)
        assert await https_ok(renewed_ca)
        assert not await grpc_ok(pki.ca_file)  # new connections get the new certificate only
        assert not await https_ok(pki.ca_file)

        pki.cert_file.write_text("not a certificate\n")  # a broken write: the renewal stays
        await asyncio.sleep(0.1)
        assert await grpc_ok(renewed_ca)
        assert await https_ok(renewed_ca)
        tls = collector._running_receiver().tls
        assert tls is not None
        assert tls.reloads == 1  # one load for both receivers: they share the files' watch
        assert collector._running_http_receiver().tls is tls
