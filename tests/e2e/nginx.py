"""Debian's nginx for end-to-end tests: deploy/nginx.conf rendered for loopback ports, TLS included.

nginx runs in the foreground (`daemon off`) with its own prefix, pid, logs and temp folders, and
a throwaway certificate for 127.0.0.1 that clients trust through SSL_CERT_FILE.
"""

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.render_nginx import TEMPLATE, render
from tests.live import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

MAIN = """\
{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/spacehub.conf;
}}
"""


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spacehub test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkcs8 = serialization.PrivateFormat.PKCS8
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
    return cert_path, key_path


class Nginx:
    """nginx in front of `upstreams`, on two free loopback ports (plain HTTP and TLS)."""

    def __init__(
        self, prefix: Path, upstreams: list[str], static_root: Path, media_root: Path, max_upload_mb: int = 1
    ) -> None:
        self.prefix = prefix
        self.http_port, self.https_port = free_port(), free_port()
        self.cert, self.key = make_cert(prefix)
        for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "acme"):
            (prefix / folder).mkdir(exist_ok=True)
        site = render(
            TEMPLATE.read_text(),
            {
                "UPSTREAM": upstreams,
                "SERVER_NAME": ["127.0.0.1"],
                "HTTP_LISTEN": [f"127.0.0.1:{self.http_port}"],
                "HTTPS_LISTEN": [f"127.0.0.1:{self.https_port}"],
                "TLS_CERT": [str(self.cert)],
                "TLS_KEY": [str(self.key)],
                "ACME_ROOT": [str(prefix / "acme")],
                "STATIC_ROOT": [str(static_root)],
                "MEDIA_ROOT": [str(media_root)],
                "MAX_BODY": [f"{max_upload_mb + 1}m"],
            },
        )
        (prefix / "spacehub.conf").write_text(site)
        # As root, nginx's workers would run as nobody, who cannot read the tests' media folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(MAIN.format(user=user, prefix=prefix))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        """The hub's address (HTTPS), like Daphne.http: WebUser talks to nginx through it."""
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def ws(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}"

    @property
    def plain(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def check(self) -> subprocess.CompletedProcess[str]:
        """`nginx -t` on the rendered configuration."""
        command = [NGINX, "-t", "-c", str(self.conf), "-p", str(self.prefix)]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    def start(self) -> "Nginx":
        with open(self.prefix / "stderr.log", "ab") as stderr:
            self.proc = subprocess.Popen(
                [NGINX, "-c", str(self.conf), "-p", str(self.prefix)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        wait_for(lambda: self._answers() or self.proc.poll() is not None, 10)  # type: ignore[union-attr]
        if self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {self.error_log()}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.https_port), timeout=0.5):
                return True
        except OSError:
            return False


def wait_for(check: Callable[[], Any], timeout: float, message: str = "") -> Any:
    """Poll `check` until it returns something true (and return it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(message or f"not within {timeout} s")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def raw(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects: status, headers, body."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body (fields, then (field, filename, data, content type)) and its type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for field, filename, data, content_type in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
