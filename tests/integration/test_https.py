"""``serve --ssl-certfile/--ssl-keyfile``: the page, the health check and the WebSocket over
TLS (browsers give a page the microphone only on HTTPS or on localhost)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from benchmarks.harness.service import ServiceProcess


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class HttpsService(ServiceProcess):
    @property
    def http_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/v1/realtime"


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cert_path, key_path = self_signed_certificate(tmp_path)
    # httpx (here and in ServiceProcess's health check) trusts SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    return cert_path, key_path


@pytest.fixture
def https_service(certificate: tuple[Path, Path], tmp_path: Path) -> Iterator[HttpsService]:
    cert_path, key_path = certificate
    args = ("--ssl-certfile", str(cert_path), "--ssl-keyfile", str(key_path))
    with HttpsService(*args, log_path=tmp_path / "serve.log") as service:
        yield service


async def test_serve_with_a_certificate_serves_the_page_and_the_websocket_over_tls(
    https_service: HttpsService, certificate: tuple[Path, Path]
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    async with httpx.AsyncClient(base_url=https_service.http_url, verify=trusted,
                                 timeout=10) as http:  # fmt: skip
        assert (await http.get("/healthz")).status_code == 200
        page = await http.get("/")
        assert page.status_code == 200
        assert 'id="call-button"' in page.text
        assert (await http.get("/static/call.js")).status_code == 200

    async with websockets.connect(https_service.ws_url, ssl=trusted, open_timeout=10) as ws:
        event = json.loads(await ws.recv())
        assert event["type"] == "session.created"

    # The port speaks TLS only: plain HTTP gets no page.
    async with httpx.AsyncClient(timeout=5) as plain:
        with pytest.raises(httpx.HTTPError):
            response = await plain.get(f"http://127.0.0.1:{https_service.port}/healthz")
            response.raise_for_status()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--ssl-certfile", "cert.pem"], "--ssl-certfile and --ssl-keyfile go together"),
        (["--ssl-certfile", "missing.pem", "--ssl-keyfile", "key.pem"],
         "--ssl-certfile missing.pem: no such file"),
    ],
)  # fmt: skip
def test_serve_refuses_an_incomplete_or_missing_certificate(
    flags: list[str], message: str, certificate: tuple[Path, Path]
) -> None:
    directory = certificate[0].parent
    result = subprocess.run(
        [sys.executable, "-m", "realtime", "serve", "--port", "1", *flags],
        capture_output=True, text=True, timeout=60, cwd=directory,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
