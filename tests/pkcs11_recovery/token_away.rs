//! A token that goes away and comes back while the key ring lives: no one finalises the module for
//! us (a USB token pulled, an HSM failing over; here SoftHSM2's token directory moved away and
//! back). Meanwhile every unwrap is the transient `KeyUnavailable`, with a back-off between the
//! attempts to find the token again; once it is back, the same decryptor decrypts again.
//! A PIN the token refuses is `KeyRefused`, permanent, and never tried again.

use std::time::{Duration, Instant};

use cryptoki::types::AuthPin;
use msgraph_notify::keys::pkcs11::Pkcs11Key;
use msgraph_notify::testing::GraphEncryptor;
use msgraph_notify::{Decryptor, EncryptedContent, Error};
use test_support::softhsm;

fn item(cert: &msgraph_notify::keys::Certificate, n: usize) -> EncryptedContent {
    GraphEncryptor::new(cert, "id")
        .encrypt(format!("{{\"n\":{n}}}").as_bytes())
        .unwrap()
}

#[test]
fn a_token_moved_away_and_back_is_found_again_without_a_restart() {
    let _one = super::one_at_a_time();
    let Some(hsm) = softhsm::hsm(super::TOKENS) else {
        return;
    };
    let key = {
        let _creating = softhsm::creating();
        Pkcs11Key::generate(&hsm.uri("away", "k"), 2048, "away", 7).unwrap()
    };
    let cert = key.certificate().cloned().unwrap();
    let decryptor = Decryptor::with_unwrapper(key.clone(), Some(cert.clone())).unwrap();
    assert_eq!(
        decryptor.decrypt(&item(&cert, 1)).unwrap().as_str(),
        r#"{"n":1}"#
    );

    // Away: the module is left as it is; only the token's files are gone.
    let tokens = hsm.dir.join("tokens");
    let away = hsm.dir.join("tokens.away");
    std::fs::rename(&tokens, &away).unwrap();
    let calls = key.unwrap_calls();
    for n in 2..12 {
        match decryptor.decrypt(&item(&cert, n)) {
            Err(e @ Error::KeyUnavailable(_)) => {
                assert!(e.is_transient(), "{e}");
                assert!(e.to_string().contains("away"), "names the token: {e}");
            }
            other => panic!("expected KeyUnavailable while the token is away, got {other:?}"),
        }
    }
    // Ten unwraps while away: at most the first reached C_Decrypt (and found the loss); the
    // others waited out the back-off without touching the module.
    assert!(
        key.unwrap_calls() <= calls + 1,
        "{} C_Decrypt calls while the token was away",
        key.unwrap_calls() - calls
    );

    // Back: the same decryptor finds it again within the back-off (at most 10 s), no restart.
    std::fs::rename(&away, &tokens).unwrap();
    let reconnects = key.reconnects();
    let deadline = Instant::now() + Duration::from_secs(30);
    let plaintext = loop {
        match decryptor.decrypt(&item(&cert, 12)) {
            Ok(p) => break p,
            Err(e @ Error::KeyUnavailable(_)) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the token came back but the key did not: {e}"),
        }
    };
    assert_eq!(plaintext.as_str(), r#"{"n":12}"#);
    assert_eq!(key.reconnects(), reconnects + 1);
    // And it stays found.
    for n in 13..16 {
        assert_eq!(
            decryptor.decrypt(&item(&cert, n)).unwrap().as_str(),
            format!("{{\"n\":{n}}}")
        );
    }
}

#[test]
fn a_pin_the_token_refuses_is_permanent_and_never_tried_again() {
    let _one = super::one_at_a_time();
    let Some(hsm) = softhsm::hsm(super::TOKENS) else {
        return;
    };
    let key = {
        let _creating = softhsm::creating();
        Pkcs11Key::generate(&hsm.uri("pin", "k"), 2048, "pin", 8).unwrap()
    };
    let cert = key.certificate().cloned().unwrap();
    let decryptor = Decryptor::with_unwrapper(key.clone(), Some(cert.clone())).unwrap();
    assert!(decryptor.decrypt(&item(&cert, 1)).is_ok());

    // The user PIN changes on the token while the process runs, then the module is lost
    // (finalised): the key logs in again with the PIN it holds, which the token refuses.
    {
        let ctx = hsm.ctx();
        let session = hsm.session(&ctx, "pin");
        session
            .set_pin(&AuthPin::from(softhsm::PIN), &AuthPin::from("000000"))
            .unwrap();
    }
    hsm.ctx().finalize().unwrap();
    let refused = |e: Result<_, Error>| match e {
        Err(e @ Error::KeyRefused(_)) => {
            assert!(!e.is_transient(), "a refused PIN is never retried: {e}");
            assert_eq!(e.label(), "key");
            let text = e.to_string();
            assert!(text.contains("PIN is incorrect"), "{text}");
            assert!(!text.contains(softhsm::PIN), "never the PIN itself: {text}");
        }
        other => panic!("expected KeyRefused, got {other:?}"),
    };
    refused(decryptor.decrypt(&item(&cert, 2)));
    // Again: refused at once, without a new session or login on the token.
    let sessions = key.sessions_opened();
    let calls = key.unwrap_calls();
    refused(decryptor.decrypt(&item(&cert, 3)));
    assert_eq!(key.sessions_opened(), sessions);
    assert_eq!(key.unwrap_calls(), calls);
}
