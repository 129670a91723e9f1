"""Issues the CA, the server's and the agents' certificates and writes them to disk.

Only `photonic certs` and test fixtures make certificates; the daemons just read them, through
photonic.tls. Keys are written so that no other user can read them, not even for a moment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from photonic.errors import InvalidInput, PhotonicError
from photonic.media.hashing import fsync_directory, fsync_fd
from photonic.models import is_agent_id
from photonic.tls import hint_for, load_certificate, read_tls_file, utc_now

SERVER_COMMON_NAME = "photonic-server"
CA_COMMON_NAME = "photonic-ca"
KEY_MODE = 0o600
CERT_MODE = 0o644
DIR_MODE = 0o700
# Tolerates clocks that disagree by a few minutes between machines that just made a cert.
_CLOCK_SKEW = dt.timedelta(minutes=5)

Clock = Callable[[], dt.datetime]
_PrivateKey = ec.EllipticCurvePrivateKey


class CertificateExists(PhotonicError):
    """A certificate or key file is already there and replacing it was not asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path} already exists: use --force to replace it")


@dataclass(frozen=True)
class PkiPaths:
    """Where `init_pki` wrote the CA and the server's certificate and key."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def init_pki(
    directory: Path,
    sans: Sequence[str] = (),
    force: bool = False,
    *,
    validity_days: int = 3650,
    clock: Clock = utc_now,
) -> PkiPaths:
    """Make a new CA and a server certificate for localhost, this host and every name in sans."""
    paths = PkiPaths(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
    )
    _refuse_existing([paths.ca_cert, paths.ca_key, paths.server_cert, paths.server_key], force)
    san_entries = _server_sans(sans)
    now = clock()
    not_before, not_after = now - _CLOCK_SKEW, now + dt.timedelta(days=validity_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(CA_COMMON_NAME)
    ca_cert = (
        _builder(ca_name, ca_name, ca_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _leaf_builder(_name(SERVER_COMMON_NAME), ca_cert, ca_key, server_key, not_before, not_after)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san_entries), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _write_file(paths.ca_key, _key_pem(ca_key), KEY_MODE)
    _write_file(paths.server_key, _key_pem(server_key), KEY_MODE)
    _write_file(paths.ca_cert, _cert_pem(ca_cert), CERT_MODE)
    _write_file(paths.server_cert, _cert_pem(server_cert), CERT_MODE)
    return paths


def issue_agent_cert(
    directory: Path,
    agent_id: str,
    force: bool = False,
    *,
    validity_days: int = 825,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    clock: Clock = utc_now,
    server_role: bool = False,
    sans: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write DIR/<agent_id>.crt and .key, a client certificate signed by DIR/ca.crt + ca.key.

    server_role (`photonic certs issue NAME --role server`): a certificate a server both
    serves with and dials other servers with (a primary replicating to an archive node, which
    knows it by NAME): extended key usage serverAuth and clientAuth, and the server's SANs."""
    if not is_agent_id(agent_id):
        raise InvalidInput(
            f"agent id {agent_id!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if agent_id in {"ca", "server"}:
        raise InvalidInput(
            f"agent id {agent_id!r} would overwrite the {agent_id} files: pick another id"
        )
    cert_path, key_path = directory / f"{agent_id}.crt", directory / f"{agent_id}.key"
    _refuse_existing([cert_path, key_path], force)
    ca_cert, ca_key = _load_ca(directory)
    now = clock()
    start = not_before if not_before is not None else now - _CLOCK_SKEW
    end = not_after if not_after is not None else now + dt.timedelta(days=validity_days)
    agent_key = ec.generate_private_key(ec.SECP256R1())
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server_role
              else [ExtendedKeyUsageOID.CLIENT_AUTH])
    builder = (_leaf_builder(_name(agent_id), ca_cert, ca_key, agent_key, start, end)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    if server_role:
        builder = builder.add_extension(x509.SubjectAlternativeName(_server_sans(sans)),
                                        critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_file(key_path, _key_pem(agent_key), KEY_MODE)
    _write_file(cert_path, _cert_pem(cert), CERT_MODE)
    return cert_path, key_path


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    # Checked for every file before anything is written, so a refusal leaves no half-made set.
    if force:
        return
    for path in paths:
        if path.exists() or path.is_symlink():
            raise CertificateExists(path)


def _load_ca(directory: Path) -> tuple[x509.Certificate, _PrivateKey]:
    ca_cert, key_path = load_certificate(directory / "ca.crt"), directory / "ca.key"
    try:
        key = serialization.load_pem_private_key(
            read_tls_file(key_path, hint_for(key_path)), None
        )
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{key_path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"{key_path} is not an EC key: {hint_for(key_path, replace=True)}")
    return ca_cert, key


def _server_sans(extra: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in ["localhost", "127.0.0.1", "::1", *extra]:
        _add_san(entries, _general_name(name))
    with contextlib.suppress(InvalidInput):
        # A host name that is not a valid DNS name is skipped: the other SANs still work.
        _add_san(entries, _general_name(socket.gethostname()))
    return entries


def _add_san(entries: list[x509.GeneralName], entry: x509.GeneralName) -> None:
    if entry not in entries:
        entries.append(entry)


def _general_name(name: str) -> x509.GeneralName:
    name = name.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise InvalidInput(f"{name!r} is neither an IP address nor a DNS name") from exc
    if not ascii_name or " " in ascii_name:
        raise InvalidInput(f"{name!r} is neither an IP address nor a DNS name")
    return x509.DNSName(ascii_name)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: _PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _leaf_builder(
    subject: x509.Name,
    ca_cert: x509.Certificate,
    ca_key: _PrivateKey,
    key: _PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return (
        _builder(subject, ca_cert.subject, key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(aki, critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write via a temp file created with its final mode, so a key is never readable by others."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; only certificates are widened (a key is never chmod-ed).
        if mode != KEY_MODE:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            fsync_fd(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(path.parent)
