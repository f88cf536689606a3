"""SeaweedFS as `make run` and the tests run it: only S3 with the platform's keys gets in.

`weed server` opens more than S3: the master, volume and filer HTTP APIs and a gRPC port
for each (port + 10000), none of which asks for credentials by default. Whoever reaches
them could read, overwrite or delete objects behind S3's back, and anyone who reaches the
master gets a write token from /dir/assign. So every start writes a security.toml that:

- requires client certificates (mutual TLS) on every gRPC port and on the master,
  volume and filer HTTP ports, all signed by a CA made for this start alone (its private
  key is never written down, so nobody can sign another certificate later);
- signs volume and filer reads and writes with JWT keys made for this start;
- and the command line turns the master's and the filer's plain HTTP APIs off.

The S3 port itself refuses every request not signed with the configured access key.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: SeaweedFS's components: each serves with its own certificate; "client" is how they dial
COMPONENTS = ("master", "volume", "filer", "s3", "client")


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _certificate(
    subject: str, issuer: x509.Name, public_key, signer, *, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if not ca:
        # each component serves and dials with the same certificate; the volume and filer
        # reach each other by IP, so the IP SAN is what their HTTPS checks
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        ).add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def write_certificates(directory: Path) -> None:
    """A throw-away CA and a certificate per component; the CA's key is not kept."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Overdracht object store CA")])
    ca = _certificate("Overdracht object store CA", ca_name, ca_key.public_key(), ca_key, ca=True)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in COMPONENTS:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(name, ca_name, key.public_key(), ca_key, ca=False)
        (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _private(
            directory / f"{name}.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


def security_toml(tls: Path) -> str:
    """JWT keys for this start, mutual TLS everywhere (every [grpc.*] section: one left out
    would silently serve plaintext gRPC)."""

    def jwt(section: str) -> str:
        return f'[{section}]\nkey = "{secrets.token_urlsafe(32)}"\nexpires_after_seconds = 10\n'

    def pair(name: str) -> str:
        return f'cert = "{tls / f"{name}.crt"}"\nkey = "{tls / f"{name}.key"}"\n'

    parts = [jwt(s) for s in ("jwt.signing", "jwt.signing.read", "jwt.filer_signing")]
    parts.append(jwt("jwt.filer_signing.read"))
    parts.append("[access]\nui = false\n")
    parts.append(f'[grpc]\nca = "{tls / "ca.crt"}"\n')
    parts += [f"[grpc.{name}]\n{pair(name)}" for name in COMPONENTS]
    parts += [
        f'[https.{n}]\n{pair(n)}ca = "{tls / "ca.crt"}"\n' for n in ("master", "volume", "filer")
    ]
    parts.append(f'[https.client]\nenabled = true\n{pair("client")}ca = "{tls / "ca.crt"}"\n')
    return "\n".join(parts)


def write_security_config(directory: Path) -> Path:
    """Certificates and security.toml under directory; returns the -config_dir to pass."""
    tls = directory / "tls"
    write_certificates(tls)
    config_dir = directory / "conf"
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _private(config_dir / "security.toml", security_toml(tls.resolve()).encode())
    return config_dir
