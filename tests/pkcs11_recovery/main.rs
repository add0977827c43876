//! A lost token or session recovers without a restart: the module finalized under the key (every
//! session gone, the library uninitialised), then re-initialised by someone else (sessions gone,
//! library up), then the token removed (its directory moved away) and re-inserted. Its own test
//! binary: finalizing the module would disturb the other PKCS#11 tests of a shared process.

use msgraph_notify::keys::pkcs11::Pkcs11Key;
use msgraph_notify::testing::GraphEncryptor;
use msgraph_notify::{Decryptor, Error};
use test_support::softhsm;

#[test]
fn lost_sessions_and_a_removed_token_recover_without_a_restart() {
    let Some(hsm) = softhsm::hsm(&["recovery"]) else {
        return;
    };
    let key = Pkcs11Key::generate(&hsm.uri("recovery", "k"), 2048, "recovery", 1).unwrap();
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

    // 4. Re-inserted: the next unwrap finds it again, same key, no restart.
    std::fs::remove_dir(&tokens).unwrap();
    std::fs::rename(&away, &tokens).unwrap();
    hsm.ctx().finalize().unwrap();
    assert_eq!(decryptor.decrypt(&item(5)).unwrap().as_str(), r#"{"n":5}"#);
}
