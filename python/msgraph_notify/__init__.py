"""Verify and decrypt Microsoft Graph change notifications with resource data.

A Rust core (the msgraph-notify crate) behind a small Python API::

    from msgraph_notify import KeyRing, Receiver

    keys = KeyRing()
    keys.add("my-cert-id", "graph.pfx", password=os.environ["PFX_PASSWORD"])
    receiver = Receiver(keys, app_ids=[APP_ID], client_state=os.environ["CLIENT_STATE"])

    reply = receiver.receive(body, query)        # body: the POST's bytes
    if reply.handshake is not None:
        ...  # answer 200, text/plain, reply.handshake
    for item in reply.items:                     # answer 202 first, then process
        if item.status == "decrypted":
            handle(item.resource_kind, item.data)

Each body's validation tokens are checked (signature by Microsoft's keys, audience, Graph as
publisher, tenant-bound issuer, lifetime), then each item's clientState, then its HMAC signature
in constant time, and only then is it decrypted. One bad item never sinks the others.
Every exception derives from :class:`Error`. ``msgraph_notify.testing`` encrypts and signs
notifications as Graph does, for your tests.
"""

from ._native import (
    BackendError,
    BodyTooLargeError,
    CertificateError,
    ClientStateError,
    DuplicateError,
    Error,
    FetchError,
    Item,
    KeyLoadError,
    KeyRing,
    KeySelectionError,
    KeyUnavailableError,
    MalformedError,
    PayloadError,
    Receiver,
    ReplayStoreError,
    Reply,
    SigningKeys,
    TokenError,
    TooManyError,
    VerificationError,
    __version__,
)

__all__ = [
    "BackendError",
    "BodyTooLargeError",
    "CertificateError",
    "ClientStateError",
    "DuplicateError",
    "Error",
    "FetchError",
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
    "TooManyError",
    "VerificationError",
    "__version__",
]
