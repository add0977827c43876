"""Type stubs of the Rust extension (msgraph_notify._native); see the package's docstrings."""

import os
from collections.abc import Awaitable, Sequence
from typing import Any, Optional, Union, final

__version__: str
__all__ = [
    "BackendError",
    "BodyTooLargeError",
    "CertificateError",
    "ClientStateError",
    "DuplicateError",
    "Error",
    "FetchError",
    "GraphEncryptor",
    "Item",
    "KeyLoadError",
    "KeyRing",
    "KeySelectionError",
    "KeyUnavailableError",
    "MalformedError",
    "PayloadError",
    "Receiver",
    "ReplayStoreError",
    "Reply",
    "SigningKeys",
    "TokenError",
    "TokenIssuer",
    "TooManyError",
    "VerificationError",
    "__version__",
    "self_signed_certificate",
]

_Source = Union[bytes, str, "os.PathLike[str]"]
_Strings = Union[str, Sequence[str]]

class Error(Exception):
    """The base of every msgraph_notify exception; str(e) is the crate's message."""

class MalformedError(Error):
    """A body, field or file is malformed (not JSON, `value` missing, bad base64...)."""

class BodyTooLargeError(Error):
    """The body is larger than the receiver's max_body_bytes."""

class TooManyError(Error):
    """The body holds more items or validation tokens than the receiver accepts."""

class KeySelectionError(Error):
    """No registered key serves the item (unknown encryptionCertificateId, thumbprint mismatch)."""

class VerificationError(Error):
    """The encrypted content failed verification (one uniform error for every crypto failure)."""

class KeyLoadError(Error):
    """A private key could not be loaded (format, password)."""

class CertificateError(Error):
    """A certificate could not be loaded or does not belong to its key."""

class TokenError(Error):
    """A validation token was rejected, or none covers the item."""

class ClientStateError(Error):
    """The item's clientState is missing or matches no configured secret."""

class DuplicateError(Error):
    """The item was already accepted (a replay, or Graph retrying)."""

class KeyUnavailableError(Error):
    """The decryption key could not be used now (transient: retry later)."""

class ReplayStoreError(Error):
    """The replay store could not answer (transient: retry later)."""

class PayloadError(Error):
    """An offloaded payload could not be read."""

class FetchError(Error):
    """Microsoft's token signing keys could not be fetched."""

class BackendError(Error):
    """A failure of the cryptographic backend, or another error of the crate."""

@final
class KeyRing:
    """The private keys of the certificates you gave Graph, each under its encryptionCertificateId."""

    def __new__(cls) -> "KeyRing": ...
    def add(
        self,
        certificate_id: Optional[str],
        source: _Source,
        password: Optional[str] = None,
        certificate: Optional[_Source] = None,
    ) -> None:
        """Adds a private key (PEM, DER or PKCS#12 bytes, or a path) under certificate_id."""
    def add_pkcs11(self, certificate_id: Optional[str], uri: str, pin: Optional[str] = None) -> None:
        """Adds a key held in a PKCS#11 token, addressed by an RFC 7512 URI."""
    def remove(self, certificate_id: str) -> bool:
        """Removes every key registered under certificate_id; returns whether one was."""
    def __len__(self) -> int: ...

@final
class SigningKeys:
    """The Microsoft identity platform's token signing keys."""

    @staticmethod
    def from_jwks(jwks: Union[str, bytes, dict[str, Any]]) -> "SigningKeys":
        """Keys from a JWKS document."""
    @staticmethod
    def fetch(
        metadata_url: Optional[str] = None,
        jwks_url: Optional[str] = None,
        timeout: float = 10.0,
        ttl: float = 43200.0,
        min_refresh_interval: float = 300.0,
    ) -> "SigningKeys":
        """Microsoft's keys, fetched now and refreshed in the background."""
    def kids(self) -> list[str]:
        """The key ids held now."""
    def __contains__(self, kid: str, /) -> bool: ...
    def __len__(self) -> int: ...

@final
class Item:
    """The outcome of one notification of a body."""

    index: int
    status: str
    resource_kind: Optional[str]
    data: Optional[Any]
    plaintext: Optional[bytes]
    subscription_id: Optional[str]
    tenant_id: Optional[str]
    change_type: Optional[str]
    resource: Optional[str]
    lifecycle_event: Optional[str]
    error: Optional[str]
    error_type: Optional[type[Error]]
    transient: bool
    rejected: bool
    def to_dict(self) -> dict[str, Any]:
        """The JSON object `msgraph-notify decrypt` prints for this item."""

@final
class Reply:
    """What to answer and what arrived."""

    handshake: Optional[str]
    items: list[Item]
    status_code: int

@final
class Receiver:
    """Verifies and decrypts Graph's change notifications."""

    def __new__(
        cls,
        keys: KeyRing,
        app_ids: _Strings,
        *,
        client_state: Optional[_Strings] = None,
        signing_keys: Optional[SigningKeys] = None,
        replay: bool = True,
        tenants: Optional[_Strings] = None,
        max_body_bytes: int = ...,  # 1 MiB
        max_items: int = ...,  # 1000
        parallel: bool = False,
        replay_capacity: int = 100000,
        replay_ttl: float = 86400.0,
        insecure_skip_token_validation: bool = False,
    ) -> "Receiver": ...
    def receive(self, body: Union[bytes, bytearray], query: Optional[str] = None) -> Reply:
        """Handles one POST (the GIL released while it works)."""
    def areceive(self, body: Union[bytes, bytearray], query: Optional[str] = None) -> Awaitable[Reply]:
        """receive, run in a worker thread off the event loop."""
    @staticmethod
    def handshake_token(query: str) -> Optional[str]:
        """The handshake token of a query string, or None."""

@final
class GraphEncryptor:
    """Encrypts resources for a certificate exactly as Graph does."""

    def __new__(cls, certificate: bytes, certificate_id: str) -> "GraphEncryptor": ...
    def encrypt(self, plaintext: bytes) -> dict[str, Any]:
        """The encryptedContent object of plaintext."""
    def notification(
        self,
        resource: dict[str, Any],
        tenant_id: str,
        resource_path: str = "communications/presences/u1",
        *,
        subscription_id: Optional[str] = None,
        change_type: str = "updated",
        client_state: Optional[str] = None,
    ) -> dict[str, Any]:
        """One notification carrying resource encrypted."""

@final
class TokenIssuer:
    """Signs validation tokens as the Microsoft identity platform does, with its own key."""

    kid: str
    def __new__(cls) -> "TokenIssuer": ...
    def jwks(self) -> str:
        """The issuer's public key as a JWKS document."""
    def signing_keys(self) -> SigningKeys:
        """The issuer's public key as SigningKeys."""
    def token(self, app_id: str, tenant_id: str, version: str = "2.0") -> str:
        """A valid token for app_id in tenant_id."""
    def flawed_token(self, app_id: str, tenant_id: str, flaw: str, version: str = "2.0") -> str:
        """A token wrong in exactly one way."""

def self_signed_certificate(
    common_name: str = "receiver.example", bits: int = 2048, days: int = 30
) -> tuple[bytes, bytes]:
    """A new RSA key and a self-signed certificate: (key_pem, certificate_pem)."""
