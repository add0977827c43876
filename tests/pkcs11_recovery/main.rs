//! A lost token or session recovers without a restart: the module finalized under the key (every
//! session gone, the library uninitialised), then re-initialised by someone else (sessions gone,
//! library up), then the token removed (its directory moved away) and re-inserted. Its own test
//! binary: finalizing the module would disturb the other PKCS#11 tests of a shared process; its
//! tests run one at a time for the same reason.

use msgraph_notify::keys::pkcs11::Pkcs11Key;
use msgraph_notify::testing::GraphEncryptor;
use msgraph_notify::{Decryptor, Error};
use test_support::softhsm;

mod token_away;

/// The tokens every test of this binary uses (the SoftHSM of a process is made once).
const TOKENS: &[&str] = &["recovery", "away", "pin"];

/// The tests of this binary finalize the module: one at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn lost_sessions_and_a_removed_token_recover_without_a_restart() {
    let _one = one_at_a_time();
    let Some(hsm) = softhsm::hsm(TOKENS) else {
        return;
    };
    let key = {
        let _creating = softhsm::creating();
        Pkcs11Key::generate(&hsm.uri("recovery", "k"), 2048, "recovery", 1).unwrap()
    };
    let cert = key.certificate().cloned().unwrap();
    let decryptor = Decryptor::with_unwrapper(key.clone(), Some(cert.clone())).unwrap();
    let item = |n: usize| {
        GraphEncryptor::new(&cert, "id")
            .encrypt(format!("{{\"n\":{n}}}").as_bytes())
            .unwrap()
    };
    assert_eq!(decryptor.decrypt(&item(1)).unwrap().as_str(), r#"{"n":1}"#);
    assert_eq!(key.reconnects(), 0);

    // 1. C_Finalize by another user of the module in this process: all sessions are closed and
    //    the library is uninitialised. The next unwrap re-initialises and reopens.
    hsm.ctx().finalize().unwrap();
    assert_eq!(decryptor.decrypt(&item(2)).unwrap().as_str(), r#"{"n":2}"#);
    assert_eq!(key.reconnects(), 1);

    // 2. Finalized and initialised again behind our back: the library is up, our sessions and
    //    login are gone.
    hsm.ctx().finalize().unwrap();
    let _ours = hsm.ctx();
    assert_eq!(decryptor.decrypt(&item(3)).unwrap().as_str(), r#"{"n":3}"#);
    assert_eq!(key.reconnects(), 2);

    // 3. The token removed: the key's own failure, never the notification's.
    hsm.ctx().finalize().unwrap();
    let tokens = hsm.dir.join("tokens");
    let away = hsm.dir.join("tokens.removed");
    std::fs::rename(&tokens, &away).unwrap();
    std::fs::create_dir(&tokens).unwrap();
    let calls = key.unwrap_calls();
    match decryptor.decrypt(&item(4)) {
        Err(Error::KeyUnavailable(why)) => {
            assert!(why.contains("recovery"), "names the token: {why}");
        }
        other => panic!("expected KeyUnavailable, got {other:?}"),
    }
    // One C_Decrypt found the loss (on the pooled session); none was retried without a token.
    assert_eq!(key.unwrap_calls(), calls + 1);

    // 4. Re-inserted: the key finalises and re-initialises the module itself (no one else does
    //    here) and finds the token again, same key, no restart, once its back-off has passed.
    std::fs::remove_dir(&tokens).unwrap();
    std::fs::rename(&away, &tokens).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let plaintext = loop {
        match decryptor.decrypt(&item(5)) {
            Ok(p) => break p,
            Err(Error::KeyUnavailable(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("the token is back but the key is not: {e}"),
        }
    };
    assert_eq!(plaintext.as_str(), r#"{"n":5}"#);
}
