"""The package against a pure-Python receiver (pyca/cryptography + PyJWT, the best a Python
user has today) on the same 1,000 encrypted 1 KiB items with a validation token: on one core
(one thread, the 1,000 items as four bodies of 250, about 600 KB each) and with two threads
(two bodies each).

    python bench/bench.py [--rounds 5] [--bits 2048|3072|4096]

Both do the same work per body: parse, check the token (RS256, audience, Graph as publisher,
the tenant's issuer, lifetime), clientState in constant time, unwrap each item's key (RSA-OAEP
SHA-1), check its HMAC-SHA256 in constant time, decrypt (AES-CBC), parse the resource's JSON.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import threading
import time

import jwt
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from msgraph_notify import KeyRing, Receiver
from msgraph_notify.testing import GraphEncryptor, TokenIssuer, self_signed_certificate

APP_ID = "11111111-aaaa-4bbb-8ccc-000000000001"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_STATE = "the-client-state-secret"
GRAPH_APP = "0bf30f3b-4a52-48df-9a82-234910c4a086"  # Graph change tracking: the publisher
ISSUERS = {"1.0": "https://sts.windows.net/{}/", "2.0": "https://login.microsoftonline.com/{}/v2.0"}
OAEP = asym.OAEP(mgf=asym.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


class PurePythonReceiver:
    """What a Python receiver hand-rolls today, done carefully."""

    def __init__(self, key_pem, jwks, app_id, client_state):
        self.key = serialization.load_pem_private_key(key_pem, password=None)
        self.jwks = {k["kid"]: jwt.PyJWK(k).key for k in json.loads(jwks)["keys"]}
        self.app_id = app_id
        self.client_state = client_state.encode()

    def tenants(self, tokens):
        covered = set()
        for token in tokens:
            try:
                key = self.jwks[jwt.get_unverified_header(token)["kid"]]
                claims = jwt.decode(token, key, algorithms=["RS256"], audience=self.app_id, leeway=300,
                                    options={"require": ["exp", "nbf", "iss", "aud", "tid"]})
                publisher = claims.get("azp") if claims.get("ver") == "2.0" else claims.get("appid")
                if publisher == GRAPH_APP and claims["iss"] == ISSUERS[claims["ver"]].format(claims["tid"]):
                    covered.add(claims["tid"])
            except (jwt.PyJWTError, KeyError):
                continue
        return covered

    def receive(self, body):
        doc = json.loads(body)
        covered = self.tenants(doc.get("validationTokens") or [])
        out = []
        for item in doc["value"]:
            if not hmac.compare_digest(str(item.get("clientState", "")).encode(), self.client_state):
                out.append(("rejected", "clientState"))
                continue
            if item.get("tenantId") not in covered:
                out.append(("rejected", "token"))
                continue
            content = item["encryptedContent"]
            try:
                key = self.key.decrypt(base64.b64decode(content["dataKey"]), OAEP)
            except ValueError:
                out.append(("rejected", "verification"))
                continue
            data = base64.b64decode(content["data"])
            signature = hmac.new(key, data, hashlib.sha256).digest()
            if not hmac.compare_digest(signature, base64.b64decode(content["dataSignature"])):
                out.append(("rejected", "verification"))
                continue
            decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
            unpadder = padding.PKCS7(128).unpadder()
            plain = unpadder.update(decryptor.update(data) + decryptor.finalize()) + unpadder.finalize()
            out.append(("decrypted", json.loads(plain)))
        return out


def make_bodies(items, per_body, bits):
    key_pem, cert_pem = self_signed_certificate("bench.example", bits)
    issuer = TokenIssuer()
    encryptor = GraphEncryptor(cert_pem, "cert-1")
    token = issuer.token(APP_ID, TENANT)
    bodies = []
    for start in range(0, items, per_body):
        value = []
        for n in range(start, start + per_body):
            resource = {"@odata.type": "#Microsoft.Graph.chatMessage", "id": str(n), "messageType": "message",
                        "body": {"contentType": "text", "content": "x" * 900}}  # 1 KiB of JSON
            value.append(encryptor.notification(resource, TENANT, f"chats('19:a')/messages('{n}')",
                                                client_state=CLIENT_STATE))
        bodies.append(json.dumps({"value": value, "validationTokens": [token]}).encode())
    return key_pem, cert_pem, issuer, bodies


def run(receive, bodies, threads):
    errors = []

    def work(share):
        try:
            for b in share:
                receive(b)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    shares = [bodies[i::threads] for i in range(threads)]
    ts = [threading.Thread(target=work, args=(s,)) for s in shares]
    start, cpu = time.perf_counter(), time.process_time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start, time.process_time() - cpu


def spins_during(receive, body):
    """How often this thread can count while another runs `receive(body)`: millions when the
    call releases the GIL, a handful when it holds it."""
    started, done = threading.Event(), threading.Event()
    t = threading.Thread(target=lambda: (started.set(), receive(body), done.set()))
    count = 0
    t.start()
    started.wait()
    while not done.is_set():
        count += 1
    t.join()
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each; the best is kept")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--bits", type=int, default=2048, help="the receiver's RSA key size")
    args = parser.parse_args()
    key_pem, cert_pem, issuer, bodies = make_bodies(args.items, args.items // 4, args.bits)

    keys = KeyRing()
    keys.add("cert-1", key_pem, certificate=cert_pem)
    package = Receiver(keys, [APP_ID], client_state=CLIENT_STATE, signing_keys=issuer.signing_keys(),
                       replay=False)  # the same bodies are sent again each round
    pure = PurePythonReceiver(key_pem, issuer.jwks(), APP_ID, CLIENT_STATE)

    def package_receive(b):
        for item in package.receive(b).items:
            assert item.status == "decrypted" and item.data is not None

    def pure_receive(b):
        for status, data in pure.receive(b):
            assert status == "decrypted" and data is not None

    print(f"{args.items} items of 1 KiB, RSA-{args.bits}, one token; best of {args.rounds} rounds; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"GIL: spins of another thread during one body: package {spins_during(package_receive, bodies[0]):,},"
          f" pure Python {spins_during(pure_receive, bodies[0]):,}")
    # The floor both stand on: the RSA-OAEP unwraps alone, through cryptography (OpenSSL).
    wrapped = [base64.b64decode(i["encryptedContent"]["dataKey"])
               for b in bodies for i in json.loads(b)["value"]]
    floor = []
    for _ in range(args.rounds):
        start = time.process_time()
        for w in wrapped:
            pure.key.decrypt(w, OAEP)
        floor.append(time.process_time() - start)
    print(f"RSA unwraps alone (cryptography): {min(floor) * 1000:7.1f} ms CPU")
    # Wall time decides; CPU time (all threads) is shown too, as it varies less on a shared
    # machine. The rounds alternate the two receivers so that load changes hit both alike.
    for threads in (1, 2):
        pkg, py = [], []
        for _ in range(args.rounds):
            pkg.append(run(package_receive, bodies, threads))
            py.append(run(pure_receive, bodies, threads))
        (pkg_wall, _), (py_wall, _) = min(pkg), min(py)
        pkg_cpu, py_cpu = min(c for _, c in pkg), min(c for _, c in py)
        print(f"{threads} thread(s): wall: package {pkg_wall * 1000:7.1f} ms, pure Python {py_wall * 1000:7.1f} ms,"
              f" ratio {pkg_wall / py_wall:.2f}x | CPU: package {pkg_cpu * 1000:7.1f} ms,"
              f" pure Python {py_cpu * 1000:7.1f} ms, ratio {pkg_cpu / py_cpu:.2f}x")


if __name__ == "__main__":
    main()
