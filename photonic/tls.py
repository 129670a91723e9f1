"""gRPC mutual-TLS credentials, the TLS peer's identity, and checks of a daemon's TLS files.

The daemons only read certificates; photonic.pki makes them. The file reading here is shared
with it, so a missing or unreadable file is reported the same way wherever it is read.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from photonic.errors import InvalidInput, NotFound, PhotonicError
from photonic.models import is_agent_id

if TYPE_CHECKING:
    from cryptography import x509

# cryptography is imported where it is used: an agent whose TLS files passed their check
# before (photonic.tls_memo) never loads it, which is ~40 ms of each `agent --once`.


def utc_now() -> dt.datetime:
    """The default clock: timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


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


# --- gRPC credentials and peer identity ------------------------------------------------------


def server_credentials(cert: Path, key: Path, ca: Path) -> grpc.ServerCredentials:
    """Server-side mutual TLS: only clients with a certificate signed by `ca` get in."""
    return grpc.ssl_server_credentials(
        [(read_tls_file(key, hint_for(key)), read_tls_file(cert, hint_for(cert)))],
        root_certificates=read_tls_file(ca, hint_for(ca)),
        require_client_auth=True,
    )


def channel_credentials(cert: Path, key: Path, ca: Path) -> grpc.ChannelCredentials:
    """Client-side mutual TLS: present cert/key, trust only servers signed by `ca`."""
    return grpc.ssl_channel_credentials(
        root_certificates=read_tls_file(ca, hint_for(ca)),
        private_key=read_tls_file(key, hint_for(key)),
        certificate_chain=read_tls_file(cert, hint_for(cert)),
    )


@dataclass(frozen=True)
class PeerIdentity:
    """Who a verified peer certificate says the caller is, or why it cannot say."""

    agent_id: str | None  # None when refused
    serial: int | None
    refusal: str = ""  # why the certificate cannot identify an agent; "" when it can


def peer_identity(context: grpc.aio.ServicerContext | grpc.ServicerContext) -> PeerIdentity:
    """The agent a verified client certificate names. Refused: no verified certificate, a
    CA certificate (CA:TRUE; the CA itself must never act as an agent), a subject with other
    than exactly one CN (which one would be the agent?), a CN that is not an agent id."""
    auth = _ssl_auth_context(context)
    pems = (auth.get("x509_pem_cert") or []) if auth is not None else []
    if not pems:
        return PeerIdentity(None, None, "no verified client certificate")
    return _identity_of(pems[0])


@functools.lru_cache(maxsize=1024)
def _identity_of(pem: bytes) -> PeerIdentity:
    """Parsed once per certificate: every RPC of a connection presents the same one."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem)
    serial = cert.serial_number
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return PeerIdentity(None, serial, "a CA certificate cannot be used by an agent")
    except x509.ExtensionNotFound:
        pass
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        return PeerIdentity(None, serial, f"the certificate's subject must name exactly one "
                                          f"agent (one CN); it has {len(names)}")
    name = names[0].value
    cn = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    if not is_agent_id(cn):
        return PeerIdentity(None, serial, "the certificate's CN is not a valid agent id")
    return PeerIdentity(cn, serial)


def certificate_identity(der: bytes) -> PeerIdentity:
    """What a verified certificate (DER, as a TLS socket gives it) says, by the rules
    peer_identity applies to gRPC callers: the web layer's client certificates obey them too."""
    import ssl

    return _identity_of(ssl.DER_cert_to_PEM_cert(der).encode())


def peer_common_name(context: grpc.aio.ServicerContext | grpc.ServicerContext) -> str | None:
    """The agent id of the peer's verified, acceptable certificate, or None."""
    return peer_identity(context).agent_id


def peer_certificate_serial(context: grpc.aio.ServicerContext | grpc.ServicerContext) -> int | None:
    """The serial number of the peer's verified certificate (for revocation), or None."""
    return peer_identity(context).serial


def _ssl_auth_context(context: Any) -> Mapping[str, list[bytes]] | None:
    auth: Mapping[str, list[bytes]] = context.auth_context() or {}
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    # With require_client_auth the handshake fails without a valid cert; this guards against
    # a server built with other credentials, where an unverified peer must not count.
    if not auth.get("x509_pem_cert") and not auth.get("x509_common_name"):
        return None
    return auth


def _common_name(name: x509.Name) -> str:
    from cryptography.x509.oid import NameOID

    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8")


# --- inspection ------------------------------------------------------------------------------


def certificate_info(path: Path) -> CertInfo:
    """Read one PEM certificate: subject, issuer, serial, validity and SANs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = load_certificate(path)
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
    cert: Path, key: Path, ca: Path, *, now: dt.datetime | None = None,
    agent_id: str | None = None,
) -> list[CertProblem]:
    """Like check_files_readable, with warnings (fatal=False) told apart from errors. With
    agent_id (an agent's files), a hint to make the certificate names that id."""
    at = now if now is not None else utc_now()
    problems: list[CertProblem] = []
    loaded: dict[Path, bytes] = {}
    for path in (cert, key, ca):
        try:
            loaded[path] = read_tls_file(
                path, hint_for(path, agent_id=None if path == ca else agent_id))
        except PhotonicError as exc:
            problems.append(CertProblem(str(exc)))
    if key in loaded:
        problems += _key_mode_problems(key)
    if cert in loaded and ca in loaded:
        problems += _cert_problems(cert, ca, at, agent_id)
    if cert in loaded and key in loaded and not problems_fatal(problems):
        problems += _key_match_problems(cert, key, loaded[key])
    return problems


def validity_window(cert: Path, ca: Path) -> tuple[dt.datetime, dt.datetime]:
    """When both the certificate and its CA are valid: (latest start, earliest end)."""
    both = [load_certificate(cert), load_certificate(ca)]
    return (max(c.not_valid_before_utc for c in both), min(c.not_valid_after_utc for c in both))


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


def _cert_problems(cert_path: Path, ca_path: Path, now: dt.datetime,
                   agent_id: str | None = None) -> list[CertProblem]:
    from cryptography.exceptions import InvalidSignature

    try:
        cert, ca = load_certificate(cert_path), load_certificate(ca_path)
    except PhotonicError as exc:
        return [CertProblem(str(exc))]
    problems = [_validity_problem(ca_path, ca, now),
                _validity_problem(cert_path, cert, now, agent_id)]
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


def _validity_problem(path: Path, cert: x509.Certificate, now: dt.datetime,
                      agent_id: str | None = None) -> CertProblem | None:
    if now > cert.not_valid_after_utc:
        return CertProblem(
            f"{path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: "
            f"{hint_for(path, replace=True, agent_id=agent_id)}"
        )
    if now < cert.not_valid_before_utc:
        return CertProblem(
            f"{path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: "
            "check this machine's clock"
        )
    return None


def _key_match_problems(cert_path: Path, key_path: Path, key_pem: bytes) -> list[CertProblem]:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return [CertProblem(f"{key_path} is not an unencrypted PEM private key")]
    cert_public = load_certificate(cert_path).public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, spki) != cert_public.public_bytes(enc, spki):
        return [CertProblem(f"{key_path} is not the key of {cert_path}: use the matching pair")]
    return []


# --- reading the files (photonic.pki reads its CA through these too) -----------------------


def load_certificate(path: Path) -> x509.Certificate:
    """One PEM certificate, or an error that names the command which makes the file."""
    from cryptography import x509

    data = read_tls_file(path, hint_for(path))
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise InvalidInput(f"{path} is not a PEM certificate: {hint_for(path)}") from exc


def read_tls_file(path: Path, hint: str) -> bytes:
    """The file's bytes, or an error saying why it cannot be read and, with hint, how to fix it."""
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


def hint_for(path: Path, *, replace: bool = False, agent_id: str | None = None) -> str:
    """The `photonic certs` command that makes this file: for an agent's certificate or key
    (agent_id given) the one for that agent, whatever the file is called; otherwise guessed
    from the file's name. (The --dir is the file's folder, where the CA usually is too.)"""
    force = " --force" if replace else ""
    if agent_id is not None:
        hint = f"run `photonic certs issue {agent_id} --dir {path.parent}{force}`"
        if path.stem != agent_id:  # issue names its files after the agent
            hint += (f" and point security.cert_path and key_path at {agent_id}.crt and "
                     f"{agent_id}.key there")
        return hint
    if path.stem in {"ca", "server"}:
        return f"run `photonic certs init --dir {path.parent}{force}`"
    return f"run `photonic certs issue {path.stem} --dir {path.parent}{force}`"
