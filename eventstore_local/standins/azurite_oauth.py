"""Azurite that takes Microsoft Entra tokens (`--oauth basic`), for the app's identity-based storage clients.

Azurite checks a bearer token's claims only (no signature): `iss` from Entra's issuers, `aud` a storage audience
(`https://storage.azure.com` or the account's blob/queue URL), `iat`/`nbf`/`exp` present and `exp` not passed;
anything else is 401 AuthenticationFailed ("Invalid token audience.", ...). A request with no `Authorization`
header is refused too (the containers are private), so a client that forgot its credential cannot pass.

Bearer tokens need HTTPS on both sides: Azurite refuses OAuth over HTTP, and azure-core will not send a token
to an http:// URL. So this makes a throwaway certificate authority for the run (with `cryptography`), a server
certificate it signed for 127.0.0.1 and localhost, and starts Azurite with `--cert`/`--key`. Clients trust
that CA alone: `connection_verify=azurite.ca_file`, or for the whole process `REQUESTS_CA_BUNDLE=<ca_file>`
(requests' variable, which azure-core's transport honours).

It is `Azurite` itself, started through a two-line wrapper script that adds the OAuth and TLS options to
Azurite's command line: the start-up, readiness and shutdown logic stay in one place (`standins/azurite.py`).
The well-known account key still works (over HTTPS): `connection_string` is for a test's own inspection.

    with AzuriteOAuth() as azurite:
        BlobServiceClient(azurite.blob_endpoint, credential=DefaultAzureCredential(), connection_verify=azurite.ca_file)
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eventstore_local.standins.azurite import DEVSTORE_ACCOUNT, DEVSTORE_KEY, Azurite, find_azurite

STORAGE_RESOURCE = "https://storage.azure.com"
"""The resource (token audience) of Azure Storage: what the storage SDKs ask a credential for."""


class LocalCertificates:
    """A certificate authority made for this run and a server certificate it signed for 127.0.0.1 and localhost
    (and `host`), as PEM files in a temporary directory; `remove()` deletes them."""

    def __init__(self, host: str = "127.0.0.1", prefix: str = "eventstore-tls-") -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=prefix))
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eventstore local test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        if host not in ("127.0.0.1", "localhost"):
            names.append(x509.DNSName(host))
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = self.directory / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file = self.directory / "server.pem"
        self.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        self.key_file = self.directory / "server.key"
        self.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class AzuriteOAuth(Azurite):
    """`Azurite` over HTTPS with `--oauth basic` (see the module docstring); `ca_file` is what a client trusts."""

    def __init__(self, *, host: str = "127.0.0.1", in_memory: bool = True, startup_timeout: float = 30.0) -> None:
        self._certificates = LocalCertificates(host, prefix="eventstore-azurite-oauth-")
        wrapper = self._certificates.directory / "azurite-oauth.cjs"
        options = ["--oauth", "basic", "--cert", str(self._certificates.cert_file)]
        options += ["--key", str(self._certificates.key_file)]
        # A CommonJS script (.cjs): Azurite's entry point is CommonJS and runs on require.
        wrapper.write_text(
            f"process.argv.push(...{json.dumps(options)});\nrequire({json.dumps(str(find_azurite().resolve()))});\n"
        )
        super().__init__(host=host, in_memory=in_memory, executable=wrapper, startup_timeout=startup_timeout)

    def stop(self) -> None:
        super().stop()
        self._certificates.remove()

    @property
    def ca_file(self) -> str:
        """The PEM file of the CA that signed Azurite's certificate."""
        return str(self._certificates.ca_file)

    @property
    def blob_endpoint(self) -> str:
        """The blob service's account URL (`EVENTSTORE_BLOB_ACCOUNT_URL`)."""
        return f"https://{self.host}:{self.blob_port}/{DEVSTORE_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        """The queue service's account URL (`EVENTSTORE_QUEUE_ACCOUNT_URL`)."""
        return f"https://{self.host}:{self.queue_port}/{DEVSTORE_ACCOUNT}"

    @property
    def table_endpoint(self) -> str:
        return f"https://{self.host}:{self.table_port}/{DEVSTORE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """The well-known development account's key over HTTPS: for a test's own look at what was stored."""
        return (
            f"DefaultEndpointsProtocol=https;AccountName={DEVSTORE_ACCOUNT};AccountKey={DEVSTORE_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )


__all__ = ["STORAGE_RESOURCE", "AzuriteOAuth", "LocalCertificates"]
