"""The test kit: notifications encrypted and signed as Microsoft Graph does, for testing a
receiver without Graph.

- :class:`GraphEncryptor` encrypts a resource for your certificate (RSA-OAEP-wrapped AES key,
  HMAC-SHA256 signature, AES-CBC) and builds whole notifications around it.
- :class:`TokenIssuer` signs validation tokens as the Microsoft identity platform does, with its
  own key; give the receiver ``issuer.signing_keys()`` in place of Microsoft's.
- :func:`self_signed_certificate` makes a key and certificate to receive with.

For end-to-end tests over HTTP, the crate's Graph emulator (see the project's README) sends such
notifications to a running endpoint as Graph would.

Example::

    from msgraph_notify import KeyRing, Receiver
    from msgraph_notify.testing import GraphEncryptor, TokenIssuer, self_signed_certificate

    key_pem, cert_pem = self_signed_certificate()
    issuer = TokenIssuer()
    keys = KeyRing()
    keys.add("cert-1", key_pem, certificate=cert_pem)
    receiver = Receiver(keys, ["my-app"], signing_keys=issuer.signing_keys())
    item = GraphEncryptor(cert_pem, "cert-1").notification({"availability": "Busy"}, "tenant-1")
    body = json.dumps({"value": [item], "validationTokens": [issuer.token("my-app", "tenant-1")]})
    assert receiver.receive(body.encode()).items[0].status == "decrypted"
"""

from ._native import GraphEncryptor, TokenIssuer, self_signed_certificate

__all__ = ["GraphEncryptor", "TokenIssuer", "self_signed_certificate"]
