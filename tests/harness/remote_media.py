"""Another homeserver that serves media over federation, for the cache of remote media.

:class:`RemoteMediaServer` answers Synapse's federation media download on
``https://127.0.0.1:<port>`` (its server name is that IP literal, so Synapse connects
to it directly, without well-known or SRV look-ups) with a self-signed certificate.
It answers the newer ``/_matrix/federation/v1/media/download`` with
``M_UNRECOGNIZED``, so that Synapse falls back to ``/_matrix/media/v3/download``, as
it does for a server that predates authenticated media, and serves the file there.
The homeserver fetching from it needs :meth:`RemoteMediaServer.homeserver_config`
(certificates not verified, loopback allowed for federation).
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .ports import free_port


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "remote.crt", directory / "remote.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class RemoteMediaServer:
    """A homeserver ``127.0.0.1:<port>`` with media to serve (``add``)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.name = f"127.0.0.1:{self.port}"
        self.media: dict[str, tuple[bytes, str]] = {}
        self.downloads = 0
        cert, key = _self_signed(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._http = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._http.socket = context.wrap_socket(self._http.socket, server_side=True)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def add(self, media_id: str, content: bytes, content_type: str) -> str:
        """Serve a file; its ``mxc://`` URI."""
        self.media[media_id] = (content, content_type)
        return f"mxc://{self.name}/{media_id}"

    @staticmethod
    def homeserver_config() -> dict[str, Any]:
        """What a homeserver needs to fetch from it: its self-signed certificate accepted,
        and loopback, which Synapse refuses for federation by default, allowed (a server
        name that is an IP literal is checked against ``federation_ip_range_blacklist``
        alone, never against ``ip_range_whitelist``)."""
        return {"federation_verify_certificates": False, "federation_ip_range_blacklist": []}


def _handler(server: RemoteMediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urllib.parse.unquote(self.path.split("?", 1)[0])
            prefix = f"/_matrix/media/v3/download/{server.name}/"
            if path.startswith("/_matrix/federation/v1/media/"):
                self._json(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
                return
            found = server.media.get(path[len(prefix) :]) if path.startswith(prefix) else None
            if found is None:
                self._json(404, {"errcode": "M_NOT_FOUND", "error": "Not found"})
                return
            content, content_type = found
            server.downloads += 1
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    return Handler
