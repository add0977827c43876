"""KeyRing.add_pkcs11: a key imported into a throw-away SoftHSM2 token decrypts a notification;
a wrong PIN is refused. Without SoftHSM2 the test skips, except under CI=true."""

import os
import shutil
import subprocess

import pytest

import msgraph_notify as m
from msgraph_notify.testing import GraphEncryptor, self_signed_certificate

from conftest import APP_ID, CERT_ID, CLIENT_STATE, TENANT, body, presence_item

MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/local/lib/softhsm/libsofthsm2.so"]


@pytest.fixture()
def token(tmp_path, key_and_cert, monkeypatch):
    module = next((p for p in MODULES if os.path.exists(p)), None)
    if module is None or shutil.which("softhsm2-util") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("SoftHSM2 is missing (CI=true): apt-get install softhsm2")
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    run = lambda *args: subprocess.run(["softhsm2-util", *args], check=True, capture_output=True)  # noqa: E731
    run("--init-token", "--free", "--label", "graph-py", "--pin", "1234", "--so-pin", "5678")
    (tmp_path / "key.pem").write_bytes(key_and_cert[0])
    run("--import", str(tmp_path / "key.pem"), "--token", "graph-py", "--label", "receiver",
        "--id", "01", "--pin", "1234")
    return f"pkcs11:token=graph-py;object=receiver?module-path={module}"


def test_key_in_a_token_decrypts(token, key_and_cert, encryptor, issuer):
    keys = m.KeyRing()
    keys.add_pkcs11(CERT_ID, token, pin="1234")
    assert len(keys) == 1
    receiver = m.Receiver(keys, [APP_ID], client_state=CLIENT_STATE, signing_keys=issuer.signing_keys())
    [item] = receiver.receive(body([presence_item(encryptor)], [issuer.token(APP_ID, TENANT)])).items
    assert item.status == "decrypted", item.error
    # A notification for another certificate: the token's key cannot unwrap it.
    _, other_cert = self_signed_certificate()
    [bad] = receiver.receive(body([presence_item(GraphEncryptor(other_cert, CERT_ID))],
                                  [issuer.token(APP_ID, TENANT)])).items
    assert bad.status == "rejected" and bad.error_type is m.VerificationError


def test_wrong_pin_is_refused(token):
    keys = m.KeyRing()
    with pytest.raises(m.Error) as caught:
        keys.add_pkcs11(CERT_ID, token, pin="0000")
    assert "0000" not in str(caught.value)  # the PIN never shows
    assert len(keys) == 0
