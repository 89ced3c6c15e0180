"""Per-run credentials for the deployment engine: TLS for every connection to the SuperLink, and one
key pair per SuperNode for Flower's SuperNode authentication.

A run makes a certificate authority of its own, a server certificate for 127.0.0.1 and localhost signed
by it (the SuperLink's, and each SuperNode's Runtime API), and an EC P-384 key pair per device (Flower
accepts NIST curves; keys in OpenSSH form, as ``flower-supernode --auth-supernode-private-key`` and
``flwr supernode register`` read them). Everything goes into the run's own folder, readable by this
user only, and is removed with it: nothing outlives the run, so nothing from one run opens another.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from semcom_cli.core.errors import SemcomError

__all__ = ["TlsFiles", "NodeKey", "make_tls", "make_node_key", "given_tls"]

CURVE = ec.SECP384R1  # a NIST curve: the one Flower's SuperNode authentication accepts
VALID_FOR = datetime.timedelta(days=2)  # a run's certificates are for that run only


@dataclass(frozen=True)
class TlsFiles:
    ca: Path    # the certificate authority every client trusts (--root-certificates)
    cert: Path  # the server's certificate (SuperLink, SuperNode Runtime API)
    key: Path   # its private key


@dataclass(frozen=True)
class NodeKey:
    private: Path  # flower-supernode --auth-supernode-private-key
    public: Path   # flwr supernode register


def _write_private(path: Path, data: bytes) -> None:
    # created 0600 from the start: never readable by another user, not even for a moment
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "semcom federated run"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls(folder: Path) -> TlsFiles:
    """A fresh CA and a server certificate for 127.0.0.1, ::1 and localhost, in ``folder``."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + VALID_FOR  # a little slack for clock skew
    ca_key = ec.generate_private_key(CURVE())
    ca_cert = (x509.CertificateBuilder().subject_name(_name("semcom run CA")).issuer_name(_name("semcom run CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA384()))
    server_key = ec.generate_private_key(CURVE())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]
    server_cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
                   .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False)
                   .sign(ca_key, hashes.SHA384()))
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(files.key, server_key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    # the CA's key is not kept: nothing else is ever signed with it
    return files


def make_node_key(folder: Path, name: str) -> NodeKey:
    """A fresh SuperNode key pair ``name`` / ``name.pub`` in ``folder`` (OpenSSH form)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(CURVE())
    pair = NodeKey(folder / name, folder / f"{name}.pub")
    _write_private(pair.private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                   serialization.NoEncryption()))
    pair.public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                          serialization.PublicFormat.OpenSSH) + b"\n")
    return pair


def given_tls(ca: Path, cert: Path, key: Path) -> TlsFiles:
    """User-given TLS files (PEM), checked to parse before any process starts."""
    files = TlsFiles(Path(ca), Path(cert), Path(key))
    for what, path in (("CA certificate", files.ca), ("certificate", files.cert), ("key", files.key)):
        if not path.is_file():
            raise SemcomError(f"{path}: no such {what} file")
    try:
        x509.load_pem_x509_certificates(files.ca.read_bytes())
        x509.load_pem_x509_certificate(files.cert.read_bytes())
        serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    except (ValueError, TypeError) as err:
        raise SemcomError(f"TLS files: not PEM certificates and an unencrypted PEM key ({err})") from None
    return files
