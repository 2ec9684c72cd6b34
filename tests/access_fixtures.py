"""Fixtures for the access tests: redis-servers behind a password, an ACL user or TLS, and the CLI.

Each server is private to its test, on a free port, so a server configured one way never
serves a test that expects another.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator.runtime.server import RedisServer, ServerTls, tls_unsupported_reason

DEMO_RECORDS = Path(__file__).resolve().parents[1] / "producer" / "data" / "demo25.json"
DEMO_OUTCOMES = Counter({"Record inserted": 20, "Already exists": 5})
PREFIX = "t"

# Every character that must be percent-encoded in a URL's userinfo, so the URL, redis-py's
# parsing and the masking are all put to the test; distinctive enough to never occur by chance.
PASSWORD = "Zq8:p@ss/w#rd?%&=+ x"
# An ACL file splits its lines on spaces, so the ACL user's password has none.
ACL_USER = "redstep"
ACL_PASSWORD = "Kv3:acl@pw/#?%"

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
COMPOSE_PREFIX = "${REDSTEP_PREFIX:-redstep}"


def compose_acl_rules(path: Path = COMPOSE_FILE) -> str:
    """The rules the compose file gives the app's ACL user, with ``{prefix}`` for its prefix.

    The access tests run against exactly these rules, so what they prove holds for the compose
    stack, and the README's line is this one with the prefix filled in.

    Raises:
        ValueError: the redis service's command has no ``--user`` with rules, with what to add.
    """
    items = [
        line.strip()[2:].strip('"') for line in path.read_text().splitlines() if line.strip().startswith("- ")
    ]
    if "--user" not in items:
        raise ValueError(f"{path}: the redis command has no --user option; add the app's ACL user")
    rules = []
    for item in items[items.index("--user") + 1 :]:
        if item.startswith("--"):
            break
        if item[:1] in "~&+-":
            rules.append(item.replace(COMPOSE_PREFIX, "{prefix}"))
    if not rules:
        raise ValueError(f"{path}: the --user option sets no rules (~keys, &channels, +commands)")
    return " ".join(rules)


ACL_RULES = compose_acl_rules()


def acl_line(user: str, password: str, prefix: str) -> str:
    """The ACL file line of redstep's user, for ``prefix``."""
    return f"user {user} on >{password} {ACL_RULES.format(prefix=prefix)}"


def make_tls_files(directory: Path) -> ServerTls:
    """A throwaway CA, and a certificate it signed for 127.0.0.1 and localhost, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    lifetime = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redstep test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(lifetime[0])
        .not_valid_after(lifetime[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(lifetime[0])
        .not_valid_after(lifetime[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = ServerTls(
        cert_file=directory / "server.pem",
        key_file=directory / "server-key.pem",
        ca_file=directory / "ca.pem",
    )
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.fixture
def password_server() -> Iterator[RedisServer]:
    """A redis-server that requires :data:`PASSWORD`; its ``url`` carries it, percent-encoded."""
    with RedisServer(extra_args=["--requirepass", PASSWORD], password=PASSWORD) as server:
        yield server


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server whose only user is redstep's ACL user (``default`` is switched off)."""
    acl_file = tmp_path / "users.acl"
    acl_file.write_text(f"user default off\n{acl_line(ACL_USER, ACL_PASSWORD, PREFIX)}\n")
    # DEBUG is switched on, so that only the ACL stands between the user and it.
    options = ["--aclfile", str(acl_file), "--enable-debug-command", "yes"]
    server = RedisServer(extra_args=options, username=ACL_USER, password=ACL_PASSWORD)
    with server:
        yield server


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server that speaks only TLS, with a certificate from a throwaway CA."""
    reason = tls_unsupported_reason()
    if reason:
        pytest.skip(reason)
    with RedisServer(tls=make_tls_files(tmp_path)) as server:
        yield server


def redstep_env(url: str) -> dict[str, str]:
    """The environment of a redstep process that talks to ``url``, with the test prefix."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDSTEP_")}
    env.update(REDIS_URL=url, REDSTEP_PREFIX=PREFIX, PYTHONUNBUFFERED="1")
    return env


def redstep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "producer.cli", *args]


@dataclass
class CliSession:
    """Real ``redstep`` processes against one Redis, every byte they print kept for inspection.

    Attributes:
        env: the environment of every process.
        log_dir: where the long-running services write their output.
        outputs: what each finished command printed, stdout and stderr, in order.
    """

    env: dict[str, str]
    log_dir: Path
    outputs: list[str] = field(default_factory=list)
    services: list[tuple[subprocess.Popen[bytes], IO[bytes], Path]] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``redstep ARGS`` to completion."""
        result = subprocess.run(
            redstep_command(*args), env=self.env, capture_output=True, text=True, timeout=timeout
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``redstep ARGS`` in the background (its output goes to a log file)."""
        path = self.log_dir / f"{'-'.join(args)}-{len(self.services)}.log"
        log = path.open("wb")
        process = subprocess.Popen(redstep_command(*args), env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.services.append((process, log, path))
        return process

    def stop(self) -> list[int | None]:
        """SIGTERM every service, wait for it, keep its output; return the exit codes."""
        codes = []
        for process, log, path in self.services:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                codes.append(process.wait(timeout=30))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes.append(None)
            log.close()
            self.outputs.append(path.read_text(errors="replace"))
        self.services.clear()
        return codes

    def everything_printed(self) -> str:
        return "\n".join(self.outputs)


@pytest.fixture
def cli_session(tmp_path: Path) -> Iterator[CliSession]:
    """A session; point its ``env`` at a server before use. Its services are stopped afterwards."""
    session = CliSession(env={}, log_dir=tmp_path)
    yield session
    session.stop()


def run_demo_pipeline(session: CliSession) -> None:
    """Run the dragon pipeline through the CLI on the session's Redis and check every step.

    An orchestrator and a worker run while ``produce`` enqueues the 25 demo records;
    ``subscribe --replay`` must then show each record's outcome, ``status`` must show every
    execution succeeded, ``check`` must pass, and both services must stop cleanly on SIGTERM.
    """
    session.start("orchestrator")
    session.start("worker")
    produced = session.run("produce", str(DEMO_RECORDS))
    assert produced.returncode == 0, produced.stderr
    assert "enqueued 25 record(s)" in produced.stdout

    subscribed = session.run("subscribe", "--json", "--replay", "--count", "25")
    assert subscribed.returncode == 0, subscribed.stderr
    outcomes = Counter(json.loads(line)["Subject"] for line in subscribed.stdout.splitlines())
    assert outcomes == DEMO_OUTCOMES

    summary = wait_for_status(session, lambda s: s["executions"]["SUCCEEDED"] == 25)
    assert summary["executions"]["RUNNING"] == 0
    assert summary["queue"]["dead_letters"] == 0

    checked = session.run("check")
    assert checked.returncode == 0, checked.stderr
    assert session.stop() == [0, 0]


def wait_for_status(session: CliSession, done: Callable[[dict], bool], timeout: float = 30) -> dict:
    """``status --json`` once ``done(summary)`` holds (the last commit may trail the notification)."""
    deadline = time.monotonic() + timeout
    while True:
        result = session.run("status", "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        if done(summary):
            return summary
        assert time.monotonic() < deadline, f"status never settled: {summary}"
        time.sleep(0.1)
