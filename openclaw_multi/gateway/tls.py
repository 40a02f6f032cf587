"""``gateway.tls``: the certificate the gateway serves ``wss://`` and ``https://`` with.

With ``enabled`` and no ``certPath``/``keyPath``, a self-signed certificate is generated
once into ``<state>/tls/`` (``gateway-cert.pem``, and ``gateway-key.pem`` mode 0600 in a 0700
directory) and reused on every start, so its fingerprint, which clients pin, stays the
same. As in the reference gateway, a pair is generated only when neither file exists;
half a pair is an error, never silently replaced. Runs after the profile lock is taken, so
two gateways never race to generate.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..profiles.atomic import write_file_atomic
from ..protocol.tls import certificate_fingerprint

_LOG = logging.getLogger("openclaw.gateway")
CERT_NAME = "gateway-cert.pem"
KEY_NAME = "gateway-key.pem"
VALID_DAYS = 3650


@dataclass(frozen=True)
class TlsPlan:
    """Where the certificate comes from (resolved from config by the settings)."""

    cert_path: Path
    key_path: Path
    auto_generate: bool


@dataclass(frozen=True)
class ServerTls:
    """A loaded certificate: the server context and what clients pin."""

    context: ssl.SSLContext
    fingerprint: str
    cert_path: Path
    generated: bool


def default_tls_dir(state_dir: Path) -> Path:
    """Where a generated pair lives."""
    return state_dir / "tls"


def load_server_tls(plan: TlsPlan, hosts: tuple[str, ...]) -> ServerTls:
    """Generate the pair if allowed and missing, then build the server context.

    Raises:
        ConfigError: Half a pair, a pair that cannot be generated or read, or a key that
            does not match the certificate (exit 78: restarting will not fix it).
    """
    have_cert, have_key = plan.cert_path.exists(), plan.key_path.exists()
    generated = False
    if not have_cert and not have_key and plan.auto_generate:
        try:
            generate_self_signed(plan.cert_path, plan.key_path, hosts)
        except OSError as err:
            raise ConfigError(
                f"gateway.tls: cannot generate a certificate in {plan.cert_path.parent}: "
                f"{err.strerror or err}"
            ) from None
        generated = True
        _LOG.info("gateway tls: generated a self-signed certificate at %s", plan.cert_path)
    elif not have_cert or not have_key:
        missing = plan.cert_path if not have_cert else plan.key_path
        raise ConfigError(f"gateway.tls: {missing} does not exist (set certPath and keyPath)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(plan.cert_path, plan.key_path)
        der = ssl.PEM_cert_to_DER_cert(plan.cert_path.read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or getattr(err, "reason", None) or str(err)
        raise ConfigError(
            f"gateway.tls: cannot load {plan.cert_path} / {plan.key_path}: {reason}"
        ) from None
    return ServerTls(context, certificate_fingerprint(der), plan.cert_path, generated)


def generate_self_signed(cert_path: Path, key_path: Path, hosts: tuple[str, ...]) -> None:
    """Write a new self-signed P-256 certificate and its key (0600).

    The names cover ``localhost``, the loopback addresses, this host's name and the bind
    addresses, so a client that does verify names against a pinned certificate finds them.
    """
    from cryptography import x509  # only a TLS gateway pays for the import
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname() or "localhost"
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if hostname != "localhost":
        names.append(x509.DNSName(hostname))
    addresses = {"127.0.0.1", "::1"} | {h for h in hosts if _is_ip(h)}
    for address in sorted(addresses):
        names.append(x509.IPAddress(ipaddress.ip_address(address)))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"openclaw gateway {hostname}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for directory in {cert_path.parent, key_path.parent}:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A crash between the two writes leaves half a pair, which the next start refuses
    # rather than generating over a key that may already be in use elsewhere.
    write_file_atomic(key_path, key_pem, mode=0o600)
    write_file_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _is_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_unspecified
