"""Certificates (CA, server, agents), gRPC mutual-TLS credentials and the TLS peer's identity."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from photonic.errors import InvalidInput, NotFound, PhotonicError
from photonic.models import is_agent_id

SERVER_COMMON_NAME = "photonic-server"
CA_COMMON_NAME = "photonic-ca"
KEY_MODE = 0o600
CERT_MODE = 0o644
DIR_MODE = 0o700
# Tolerates clocks that disagree by a few minutes between machines that just made a cert.
_CLOCK_SKEW = dt.timedelta(minutes=5)

Clock = Callable[[], dt.datetime]
_PrivateKey = ec.EllipticCurvePrivateKey


def utc_now() -> dt.datetime:
    """The default clock: timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


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


@dataclass(frozen=True)
class CertInfo:
    """What `photonic certs` shows about one certificate."""

    path: Path
    subject_cn: str
    issuer_cn: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    sans: tuple[str, ...]
    is_ca: bool
    sha256_fingerprint: str

    def expired(self, now: dt.datetime) -> bool:
        return now > self.not_after

    def not_yet_valid(self, now: dt.datetime) -> bool:
        return now < self.not_before


@dataclass(frozen=True)
class CertProblem:
    """One thing wrong with a daemon's TLS files; warnings do not stop a daemon."""

    message: str
    fatal: bool = True

    def __str__(self) -> str:
        return self.message if self.fatal else f"warning: {self.message}"


# --- issuing -------------------------------------------------------------------------------


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
) -> tuple[Path, Path]:
    """Write DIR/<agent_id>.crt and .key, a client certificate signed by DIR/ca.crt + ca.key."""
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
    cert = (
        _leaf_builder(_name(agent_id), ca_cert, ca_key, agent_key, start, end)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
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
    ca_cert, key_path = _load_cert(directory / "ca.crt"), directory / "ca.key"
    try:
        key = serialization.load_pem_private_key(_read(key_path, _hint_for(key_path)), None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{key_path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"{key_path} is not an EC key: {_hint_for(key_path, replace=True)}")
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
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- gRPC credentials and peer identity ------------------------------------------------------


def server_credentials(cert: Path, key: Path, ca: Path) -> grpc.ServerCredentials:
    """Server-side mutual TLS: only clients with a certificate signed by `ca` get in."""
    return grpc.ssl_server_credentials(
        [(_read(key, _hint_for(key)), _read(cert, _hint_for(cert)))],
        root_certificates=_read(ca, _hint_for(ca)),
        require_client_auth=True,
    )


def channel_credentials(cert: Path, key: Path, ca: Path) -> grpc.ChannelCredentials:
    """Client-side mutual TLS: present cert/key, trust only servers signed by `ca`."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, _hint_for(ca)),
        private_key=_read(key, _hint_for(key)),
        certificate_chain=_read(cert, _hint_for(cert)),
    )


def peer_common_name(context: grpc.aio.ServicerContext | grpc.ServicerContext) -> str | None:
    """The subject CN of the peer's verified certificate, or None without a verified peer."""
    auth = _ssl_auth_context(context)
    if auth is None:
        return None
    names = auth.get("x509_common_name") or []
    if names:
        return names[0].decode("utf-8")
    cert = _peer_cert(auth)
    return _common_name(cert.subject) if cert is not None else None


def peer_certificate_serial(context: grpc.aio.ServicerContext | grpc.ServicerContext) -> int | None:
    """The serial number of the peer's verified certificate (for revocation), or None."""
    auth = _ssl_auth_context(context)
    cert = _peer_cert(auth) if auth is not None else None
    return cert.serial_number if cert is not None else None


def _ssl_auth_context(context: Any) -> Mapping[str, list[bytes]] | None:
    auth: Mapping[str, list[bytes]] = context.auth_context() or {}
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    # With require_client_auth the handshake fails without a valid cert; this guards against
    # a server built with other credentials, where an unverified peer must not count.
    if not auth.get("x509_pem_cert") and not auth.get("x509_common_name"):
        return None
    return auth


def _peer_cert(auth: Mapping[str, list[bytes]]) -> x509.Certificate | None:
    pems = auth.get("x509_pem_cert") or []
    return x509.load_pem_x509_certificate(pems[0]) if pems else None


def _common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8")


# --- inspection ------------------------------------------------------------------------------


def certificate_info(path: Path) -> CertInfo:
    """Read one PEM certificate: subject, issuer, serial, validity and SANs."""
    cert = _load_cert(path)
    try:
        san_ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sans = tuple(str(getattr(n, "value", n)) for n in san_ext.value)
    except x509.ExtensionNotFound:
        sans = ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        path=path,
        subject_cn=_common_name(cert.subject),
        issuer_cn=_common_name(cert.issuer),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=sans,
        is_ca=is_ca,
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )


def check_files_readable(
    cert: Path, key: Path, ca: Path, *, now: dt.datetime | None = None
) -> list[str]:
    """Human-readable problems with a daemon's TLS files; empty when it can start."""
    return [str(p) for p in certificate_problems(cert, key, ca, now=now)]


def certificate_problems(
    cert: Path, key: Path, ca: Path, *, now: dt.datetime | None = None
) -> list[CertProblem]:
    """Like check_files_readable, with warnings (fatal=False) told apart from errors."""
    at = now if now is not None else utc_now()
    problems: list[CertProblem] = []
    loaded: dict[Path, bytes] = {}
    for path in (cert, key, ca):
        try:
            loaded[path] = _read(path, _hint_for(path))
        except PhotonicError as exc:
            problems.append(CertProblem(str(exc)))
    if key in loaded:
        problems += _key_mode_problems(key)
    if cert in loaded and ca in loaded:
        problems += _cert_problems(cert, ca, at)
    if cert in loaded and key in loaded and not problems_fatal(problems):
        problems += _key_match_problems(cert, key, loaded[key])
    return problems


def problems_fatal(problems: Sequence[CertProblem]) -> bool:
    """True when any problem (not merely a warning) should stop a daemon from starting."""
    return any(p.fatal for p in problems)


def _key_mode_problems(key: Path) -> list[CertProblem]:
    mode = stat.S_IMODE(key.stat().st_mode)
    if mode & 0o077:
        return [
            CertProblem(
                f"{key} can be read by other users (mode {mode:04o}): run `chmod 600 {key}`",
                fatal=False,
            )
        ]
    return []


def _cert_problems(cert_path: Path, ca_path: Path, now: dt.datetime) -> list[CertProblem]:
    try:
        cert, ca = _load_cert(cert_path), _load_cert(ca_path)
    except PhotonicError as exc:
        return [CertProblem(str(exc))]
    problems = [_validity_problem(path, c, now) for path, c in ((ca_path, ca), (cert_path, cert))]
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        problems.append(
            CertProblem(
                f"{cert_path} was not signed by the CA in {ca_path}: issue it again with "
                f"`photonic certs issue` from that CA, or point the config at the right CA"
            )
        )
    return [p for p in problems if p is not None]


def _validity_problem(path: Path, cert: x509.Certificate, now: dt.datetime) -> CertProblem | None:
    if now > cert.not_valid_after_utc:
        return CertProblem(
            f"{path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: "
            f"{_hint_for(path, replace=True)}"
        )
    if now < cert.not_valid_before_utc:
        return CertProblem(
            f"{path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: "
            "check this machine's clock"
        )
    return None


def _key_match_problems(cert_path: Path, key_path: Path, key_pem: bytes) -> list[CertProblem]:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return [CertProblem(f"{key_path} is not an unencrypted PEM private key")]
    cert_public = _load_cert(cert_path).public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, spki) != cert_public.public_bytes(enc, spki):
        return [CertProblem(f"{key_path} is not the key of {cert_path}: use the matching pair")]
    return []


def _load_cert(path: Path) -> x509.Certificate:
    data = _read(path, _hint_for(path))
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise InvalidInput(f"{path} is not a PEM certificate: {_hint_for(path)}") from exc


def _read(path: Path, hint: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"{path} does not exist: {hint}") from exc
    except PermissionError as exc:
        raise InvalidInput(
            f"{path} is not readable by this user (uid {os.getuid()}): fix its owner or mode"
        ) from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"{path} is a directory, not a file: {hint}") from exc


def _hint_for(path: Path, *, replace: bool = False) -> str:
    """The `photonic certs` command that makes this file, guessed from its name."""
    force = " --force" if replace else ""
    if path.stem in {"ca", "server"}:
        return f"run `photonic certs init --dir {path.parent}{force}`"
    return f"run `photonic certs issue {path.stem} --dir {path.parent}{force}`"
