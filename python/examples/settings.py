"""The examples' settings, from the environment (no secret on a command line):

MSGRAPH_NOTIFY_KEY           the private key file (PEM, DER or PKCS#12) of the certificate given to Graph
MSGRAPH_NOTIFY_KEY_PASSWORD  its password (PKCS#12, encrypted PEM), if any
MSGRAPH_NOTIFY_CERT          the certificate file, when the key file does not hold it
MSGRAPH_NOTIFY_CERT_ID       the encryptionCertificateId given to Graph
MSGRAPH_NOTIFY_APP_ID        your app's id (client id): the validation tokens' audience
MSGRAPH_NOTIFY_CLIENT_STATE  the clientState given to Graph
MSGRAPH_NOTIFY_JWKS          a JWKS file of token signing keys (tests); unset: Microsoft's, fetched
"""

import os

from msgraph_notify import KeyRing, Receiver, SigningKeys


def receiver_from_env() -> Receiver:
    env = os.environ
    keys = KeyRing()
    keys.add(env["MSGRAPH_NOTIFY_CERT_ID"], env["MSGRAPH_NOTIFY_KEY"],
             password=env.get("MSGRAPH_NOTIFY_KEY_PASSWORD"),
             certificate=env.get("MSGRAPH_NOTIFY_CERT"))
    jwks = env.get("MSGRAPH_NOTIFY_JWKS")
    signing_keys = SigningKeys.from_jwks(open(jwks, "rb").read()) if jwks else SigningKeys.fetch()
    return Receiver(keys, [env["MSGRAPH_NOTIFY_APP_ID"]],
                    client_state=env["MSGRAPH_NOTIFY_CLIENT_STATE"], signing_keys=signing_keys)
