"""Helpers for tests that start real servers as subprocesses (dagster-webserver, moto_server).

A server runs in its own session (process group), writes its output to files (never pipes, which
fill up and block it), and is torn down with its whole process tree, whatever the test did.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping, Sequence

BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"


def script(name: str) -> Path:
    """A console script installed next to the interpreter running the tests."""
    path = BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is not installed in the test environment")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def child_env(overrides: Mapping[str, str], *, drop_prefixes: Sequence[str] = ("AWS_", "ACTIVITYLOG_")) -> dict[str, str]:
    """The current environment without inherited AWS/ACTIVITYLOG settings, plus ``overrides``.

    Dropping inherited AWS variables keeps a developer's real credentials, profile or endpoint
    from ever reaching a test subprocess.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes))}
    env.update(overrides)
    return env


class ServerProcess:
    """A subprocess server: started in a new session, stopped with every process it spawned."""

    def __init__(self, name: str, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self._logdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self._stdout = open(self._logdir / "stdout.log", "wb")
        self._stderr = open(self._logdir / "stderr.log", "wb")
        self.process = subprocess.Popen(
            self.argv, cwd=cwd, env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stdout(self) -> str:
        return self._read(self._stdout, "stdout.log")

    def stderr(self) -> str:
        return self._read(self._stderr, "stderr.log")

    def _read(self, handle, name: str) -> str:
        if not handle.closed:
            handle.flush()
        return (self._logdir / name).read_text(errors="replace")

    def output(self, tail: int = 20_000) -> str:
        """The last characters of stdout and stderr, for failure messages."""
        return (f"--- {self.name} (pid {self.pid}, exit {self.process.poll()}) {' '.join(self.argv)}\n"
                f"--- stdout:\n{self.stdout()[-tail:]}\n--- stderr:\n{self.stderr()[-tail:]}")

    def wait_for_http(self, url: str, *, timeout: float = 90.0, interval: float = 0.25) -> float:
        """Poll ``url`` until it answers (any HTTP status); returns the seconds it took.

        Fails early, with the server's output, if the process exits first.
        """
        started = time.monotonic()
        last_error: Exception | None = None
        while time.monotonic() - started < timeout:
            if not self.running():
                raise RuntimeError(f"{self.name} exited before answering {url}\n{self.output()}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return time.monotonic() - started
            except urllib.error.HTTPError:
                return time.monotonic() - started  # it answered: up, if not happy with the path
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last_error = exc
            time.sleep(interval)
        raise TimeoutError(f"{self.name} did not answer {url} within {timeout:.0f}s "
                           f"(last error: {last_error})\n{self.output()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group (and any descendant that left it), then SIGKILL."""
        descendants = _descendants(self.pid)
        if self.running():
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)
        if self.running():
            self.process.kill()
        self.process.wait(grace)
        for child in descendants:  # e.g. a code server started in its own session
            try:
                if child.is_running():
                    child.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
        for handle in (self._stdout, self._stderr):
            handle.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session=True: the group id is the server's pid
    except (ProcessLookupError, PermissionError):
        pass


def _descendants(pid: int) -> list:
    try:
        import psutil
    except ImportError:  # psutil is a dev dependency; the process group covers the usual case
        return []
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def start_server(name: str, argv: Sequence[str | os.PathLike], *, url: str, cwd: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None, timeout: float = 90.0) -> ServerProcess:
    """Start a server and wait until ``url`` answers; on failure the process is stopped and its output shown."""
    server = ServerProcess(name, argv, cwd=cwd, env=env)
    try:
        server.wait_for_http(url, timeout=timeout)
    except BaseException:
        server.stop()
        raise
    return server


class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 in a thread, recording what it accepts.

    ``replies(*codes)``: the next DATA commands are answered with these replies (e.g. ``"451 4.3.0 busy"``)
    instead of being accepted; ``tls_context`` with ``require_starttls`` serves STARTTLS; ``credentials``
    (user, password) makes AUTH mandatory.
    """

    def __init__(self, *, tls_context=None, implicit_tls: bool = False, credentials: tuple[str, str] | None = None,
                 require_starttls: bool = False) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list = []  # email.message.EmailMessage, with .envelope_from / .envelope_to
        self.attempts = 0
        self.logins: list[str] = []
        self._scripted: list[str] = []
        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                from email import message_from_bytes
                from email.policy import default

                server.attempts += 1
                if server._scripted:
                    return server._scripted.pop(0)
                message = message_from_bytes(envelope.original_content or envelope.content, policy=default)
                message.envelope_from = envelope.mail_from
                message.envelope_to = list(envelope.rcpt_tos)
                server.messages.append(message)
                return "250 OK"

        def authenticate(smtp, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
            password = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
            ok = credentials is not None and (login, password) == credentials
            if ok:
                server.logins.append(login)
            return AuthResult(success=ok, handled=False)

        self.port = free_port()
        options = {"hostname": LOOPBACK, "port": self.port, "ready_timeout": 10}
        if implicit_tls:
            options["ssl_context"] = tls_context
        elif tls_context is not None:
            options["tls_context"] = tls_context
            options["require_starttls"] = require_starttls
        if credentials is not None:
            options.update(authenticator=authenticate, auth_required=True,
                           # with implicit TLS the whole session is encrypted; aiosmtpd only knows of STARTTLS
                           auth_require_tls=tls_context is not None and not implicit_tls)
        self._controller = Controller(Handler(), server_hostname="localhost", **options)

    def replies(self, *replies: str) -> None:
        self._scripted.extend(replies)

    def __enter__(self) -> "SmtpServer":
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()


def self_signed_certificate(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A fresh self-signed certificate for ``host`` (and 127.0.0.1): (cert.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host), x509.IPAddress(
                ipaddress.ip_address(LOOPBACK))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_tls_context(cert_path: Path, key_path: Path):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
