//! The hot path of a Graph notification, stage by stage and whole, with the same inputs through
//! OpenSSL (feature `openssl-bench`) for a side-by-side ratio. Targets and results: BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench pipeline --features openssl-bench                 # default backend + OpenSSL
//! cargo bench --bench pipeline --features openssl-bench,rust-crypto     # adds the `rsa` crate rows
//! ```
//!
//! Groups (criterion ids `group/function/parameter`):
//! - `base64_decode/{crate,openssl}/{size}`: the `data` field (the crate's engine: SIMD, padded).
//! - `rsa_unwrap/{aws-lc-rs,rsa,openssl}/{bits}`: RSA-OAEP-SHA1 unwrap of a 32-byte key.
//! - `hmac_verify/{crate,aws-lc-rs,openssl}/{size}`: HMAC-SHA256 of the ciphertext, compared in
//!   constant time.
//! - `aes_cbc_decrypt/{crate,aws-lc-rs,openssl}/{size}`: AES-256-CBC with PKCS#7, in place where
//!   the engine allows it.
//! - `json_typed/crate/{size}`: `Resource::from_json` of a chatMessage.
//! - `notification/{crate,openssl}/{size}`: one notification's JSON in, typed resource out
//!   (parse, key choice, three base64 decodes, RSA-2048 unwrap, HMAC, AES, UTF-8, JSON typing).
//! - `except_rsa/{parsed,from_json}/{size}`: the library's own path with the symmetric key given
//!   (every stage but the unwrap), from the parsed notification or from the item's JSON.
//! - `token/*`: validation of a first-seen token, a cache hit, and a receiver call whose token is
//!   cached and whose item stops before RSA.
//! - `batch100/{sequential,parallel}`: one POST of 100 encrypted 1 KiB items through `Receiver`.
//! - `unwrap_trait/{in-process,pkcs11-softhsm}/2048`: one unwrap through the `Unwrap` trait, the
//!   same RSA-2048 key in process and imported into a SoftHSM2 token (feature `pkcs11`:
//!   `cargo bench --bench pipeline --features pkcs11 -- unwrap_trait`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use msgraph_notify::model::{ChangeNotification, EncryptedContent};
use msgraph_notify::receiver::{Outcome, Receiver, Reply};
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::token::{TokenCache, TokenValidator, TokenVersion, Validation};
use msgraph_notify::{Certificate, Decryptor, PrivateKey, Resource};
use serde_json::{Value, json};

const TENANT: &str = "7e1a7c5f-2c71-4a0e-9d7b-0e7d3c1b2a99";
const APP: &str = "8a1b4c2d-0000-4000-8000-00000000a991";
const RESOURCE: &str = "chats('19:abc@thread.v2')/messages('1712345678901')";
/// Plaintext sizes of the whole-notification benches: 0.5, 1, 16 and 64 KiB.
const SIZES: [usize; 4] = [512, 1024, 16 * 1024, 64 * 1024];
/// A fixed symmetric key, so the stage benches can run without RSA.
const KEY: [u8; 32] = *b"0123456789abcdef0123456789ABCDEF";

fn label(size: usize) -> String {
    if size >= 1024 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

/// A chatMessage whose JSON is exactly `size` bytes (the body's HTML pads it).
fn chat_message(size: usize) -> Vec<u8> {
    let mut msg = json!({
        "id": "1712345678901",
        "etag": "1712345678901",
        "messageType": "message",
        "createdDateTime": "2024-04-05T12:34:56.789Z",
        "lastModifiedDateTime": "2024-04-05T12:34:56.789Z",
        "importance": "normal",
        "locale": "en-us",
        "chatId": "19:abc@thread.v2",
        "from": {"user": {"id": "5a2c1d0e-1234-4c8e-9f00-0123456789ab",
                          "displayName": "Adele Vance", "userIdentityType": "aadUser"}},
        "body": {"contentType": "html", "content": ""},
        "attachments": [], "mentions": [], "reactions": []
    });
    let base = serde_json::to_vec(&msg).expect("json").len();
    let filler = "<p>Quarterly numbers are in; see the deck before Friday.</p>";
    let mut content = String::new();
    while content.len() + base < size {
        content.push_str(filler);
    }
    content.truncate(size.saturating_sub(base));
    msg["body"]["content"] = Value::String(content);
    let out = serde_json::to_vec(&msg).expect("json");
    assert_eq!(out.len(), size.max(base));
    out
}

struct Keys {
    bits: usize,
    cert: Certificate,
    pkcs8: Vec<u8>,
}

fn keys(bits: usize) -> Keys {
    let key = PrivateKey::generate(bits).expect("key");
    let cert = Certificate::self_signed(&key, "bench", 30).expect("cert");
    let pkcs8 = key.to_pkcs8_der().to_vec();
    Keys { bits, cert, pkcs8 }
}

fn b64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// The crate's base64 engine (see src/crypto/mod.rs).
fn engine() -> base64::engine::Simd {
    base64::engine::Simd::standard(base64::engine::general_purpose::PAD)
}

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

// ---- RSA unwrap, per engine ----------------------------------------------------------------

#[cfg(feature = "aws-lc")]
fn aws_lc_unwrap(pkcs8: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey};
    let key = OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(pkcs8).expect("key"))
        .expect("oaep");
    move |wrapped| {
        let mut out = vec![0u8; key.min_output_size()];
        let len = key
            .decrypt(&OAEP_SHA1_MGF1SHA1, wrapped, &mut out, None)
            .expect("unwrap")
            .len();
        out.truncate(len);
        out
    }
}

#[cfg(feature = "rust-crypto")]
fn rust_crypto_unwrap(pkcs8: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::PrivateKey::from_pkcs8_der(pkcs8).expect("key");
    move |wrapped| key.oaep_decrypt::<sha1::Sha1>(wrapped).expect("unwrap")
}

#[cfg(feature = "openssl-bench")]
fn openssl_unwrap(pkcs8: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    // RSA_PKCS1_OAEP_PADDING defaults to SHA-1 and MGF1-SHA-1, as Graph uses.
    let rsa = openssl::pkey::PKey::private_key_from_der(pkcs8)
        .expect("key")
        .rsa()
        .expect("rsa");
    move |wrapped| {
        let mut out = vec![0u8; rsa.size() as usize];
        let len = rsa
            .private_decrypt(wrapped, &mut out, openssl::rsa::Padding::PKCS1_OAEP)
            .expect("unwrap");
        out.truncate(len);
        out
    }
}

fn bench_rsa(c: &mut Criterion, all: &[Keys]) {
    let mut g = c.benchmark_group("rsa_unwrap");
    for k in all {
        let content = GraphEncryptor::new(&k.cert, "bench")
            .symmetric_key(&KEY)
            .encrypt(b"{}")
            .expect("encrypt");
        let wrapped = b64(content.data_key.as_deref().expect("dataKey"));
        #[cfg(feature = "aws-lc")]
        {
            let f = aws_lc_unwrap(&k.pkcs8);
            assert_eq!(f(&wrapped), KEY);
            g.bench_with_input(BenchmarkId::new("aws-lc-rs", k.bits), &wrapped, |b, w| {
                b.iter(|| f(black_box(w)))
            });
        }
        #[cfg(feature = "rust-crypto")]
        {
            let f = rust_crypto_unwrap(&k.pkcs8);
            assert_eq!(f(&wrapped), KEY);
            g.bench_with_input(BenchmarkId::new("rsa", k.bits), &wrapped, |b, w| {
                b.iter(|| f(black_box(w)))
            });
        }
        #[cfg(feature = "openssl-bench")]
        {
            let f = openssl_unwrap(&k.pkcs8);
            assert_eq!(f(&wrapped), KEY);
            g.bench_with_input(BenchmarkId::new("openssl", k.bits), &wrapped, |b, w| {
                b.iter(|| f(black_box(w)))
            });
        }
        let _ = (&wrapped, &k.pkcs8);
    }
    g.finish();
}

// ---- symmetric stages ----------------------------------------------------------------------

/// The three decoded fields of an item encrypted under [`KEY`].
struct Sealed {
    data_b64: String,
    data: Vec<u8>,
    signature: Vec<u8>,
}

fn sealed(cert: &Certificate, plaintext: &[u8]) -> Sealed {
    let c = GraphEncryptor::new(cert, "bench")
        .symmetric_key(&KEY)
        .encrypt(plaintext)
        .expect("encrypt");
    let data_b64 = c.data.clone().expect("data");
    Sealed {
        data: b64(&data_b64),
        signature: b64(c.data_signature.as_deref().expect("sig")),
        data_b64,
    }
}

fn crate_hmac_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("hmac");
    mac.update(data);
    mac.verify_slice(tag).is_ok()
}

/// Base64-decodes `text` chunk by chunk, feeding each decoded chunk to HMAC-SHA256 while it is
/// in L1; checks the tag at the end.
fn fused_decode_mac(e: &base64::engine::Simd, text: &str, tag: &[u8]) -> Vec<u8> {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    const CHUNK: usize = 8192; // characters: a multiple of 4, 6 KiB decoded
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&KEY).expect("hmac");
    let mut out = vec![0u8; text.len() / 4 * 3];
    let mut len = 0;
    for chunk in text.as_bytes().chunks(CHUNK) {
        let n = e.decode_slice(chunk, &mut out[len..]).expect("b64");
        mac.update(&out[len..len + n]);
        len += n;
    }
    out.truncate(len);
    assert!(mac.verify_slice(tag).is_ok());
    out
}

fn crate_aes_decrypt(key: &[u8], buf: &mut [u8]) -> usize {
    use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    cbc::Decryptor::<aes::Aes256>::new_from_slices(key, &key[..16])
        .expect("aes")
        .decrypt_padded::<Pkcs7>(buf)
        .expect("padding")
        .len()
}

#[cfg(feature = "openssl-bench")]
fn openssl_hmac_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let pkey = openssl::pkey::PKey::hmac(key).expect("hmac key");
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).expect("signer");
    signer.update(data).expect("update");
    let mac = signer.sign_to_vec().expect("sign");
    mac.len() == tag.len() && openssl::memcmp::eq(&mac, tag)
}

#[cfg(feature = "openssl-bench")]
fn openssl_aes_decrypt(key: &[u8], data: &[u8], out: &mut Vec<u8>) -> usize {
    use openssl::symm::{Cipher, Crypter, Mode};
    let mut c =
        Crypter::new(Cipher::aes_256_cbc(), Mode::Decrypt, key, Some(&key[..16])).expect("crypter");
    out.resize(data.len() + 16, 0);
    let mut n = c.update(data, out).expect("update");
    n += c.finalize(&mut out[n..]).expect("padding");
    out.truncate(n);
    n
}

#[cfg(feature = "aws-lc")]
fn aws_lc_aes_decrypt(key: &[u8], buf: &mut [u8]) -> usize {
    use aws_lc_rs::cipher::{
        AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey,
    };
    let k = PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, key).expect("key"))
        .expect("cbc");
    let iv: [u8; 16] = key[..16].try_into().expect("iv");
    k.decrypt(buf, DecryptionContext::Iv128(iv.into()))
        .expect("padding")
        .len()
}

fn bench_symmetric(c: &mut Criterion, k: &Keys) {
    let inputs: Vec<(usize, Vec<u8>, Sealed)> = SIZES
        .iter()
        .map(|&n| {
            let pt = chat_message(n);
            let s = sealed(&k.cert, &pt);
            (n, pt, s)
        })
        .collect();

    let mut g = c.benchmark_group("base64_decode");
    for (n, _, s) in &inputs {
        g.throughput(Throughput::Bytes(s.data_b64.len() as u64));
        let e = engine();
        g.bench_with_input(BenchmarkId::new("crate", label(*n)), s, |b, s| {
            use base64::Engine;
            b.iter(|| e.decode(black_box(s.data_b64.as_bytes())).expect("b64"))
        });
        #[cfg(feature = "openssl-bench")]
        g.bench_with_input(BenchmarkId::new("openssl", label(*n)), s, |b, s| {
            b.iter(|| openssl::base64::decode_block(black_box(&s.data_b64)).expect("b64"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("hmac_verify");
    for (n, _, s) in &inputs {
        g.throughput(Throughput::Bytes(s.data.len() as u64));
        assert!(crate_hmac_verify(&KEY, &s.data, &s.signature));
        g.bench_with_input(BenchmarkId::new("crate", label(*n)), s, |b, s| {
            b.iter(|| crate_hmac_verify(&KEY, black_box(&s.data), &s.signature))
        });
        #[cfg(feature = "aws-lc")]
        g.bench_with_input(BenchmarkId::new("aws-lc-rs", label(*n)), s, |b, s| {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &KEY);
            b.iter(|| aws_lc_rs::hmac::verify(&key, black_box(&s.data), &s.signature).is_ok())
        });
        #[cfg(feature = "openssl-bench")]
        {
            assert!(openssl_hmac_verify(&KEY, &s.data, &s.signature));
            g.bench_with_input(BenchmarkId::new("openssl", label(*n)), s, |b, s| {
                b.iter(|| openssl_hmac_verify(&KEY, black_box(&s.data), &s.signature))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("aes_cbc_decrypt");
    for (n, pt, s) in &inputs {
        g.throughput(Throughput::Bytes(s.data.len() as u64));
        assert_eq!(crate_aes_decrypt(&KEY, &mut s.data.clone()), pt.len());
        // In place: each iteration gets a fresh copy of the ciphertext, made outside the timing.
        g.bench_with_input(BenchmarkId::new("crate", label(*n)), s, |b, s| {
            b.iter_batched_ref(
                || s.data.clone(),
                |buf| crate_aes_decrypt(&KEY, buf),
                BatchSize::LargeInput,
            )
        });
        #[cfg(feature = "aws-lc")]
        {
            assert_eq!(aws_lc_aes_decrypt(&KEY, &mut s.data.clone()), pt.len());
            g.bench_with_input(BenchmarkId::new("aws-lc-rs", label(*n)), s, |b, s| {
                b.iter_batched_ref(
                    || s.data.clone(),
                    |buf| aws_lc_aes_decrypt(&KEY, buf),
                    BatchSize::LargeInput,
                )
            });
        }
        #[cfg(feature = "openssl-bench")]
        {
            let mut out = Vec::new();
            assert_eq!(openssl_aes_decrypt(&KEY, &s.data, &mut out), pt.len());
            g.bench_with_input(BenchmarkId::new("openssl", label(*n)), s, |b, s| {
                b.iter(|| openssl_aes_decrypt(&KEY, black_box(&s.data), &mut out))
            });
        }
        let _ = pt;
    }
    g.finish();

    // A design the library could adopt: decode `data` in L1-sized chunks and MAC each chunk
    // while it is hot, instead of decoding all of it and then reading it again for the MAC.
    let mut g = c.benchmark_group("decode_and_mac");
    for (n, _, s) in &inputs {
        g.throughput(Throughput::Bytes(s.data.len() as u64));
        let e = engine();
        g.bench_with_input(BenchmarkId::new("separate", label(*n)), s, |b, s| {
            use base64::Engine;
            b.iter(|| {
                let data = e.decode(black_box(s.data_b64.as_bytes())).expect("b64");
                assert!(crate_hmac_verify(&KEY, &data, &s.signature));
                data
            })
        });
        assert_eq!(fused_decode_mac(&e, &s.data_b64, &s.signature), s.data);
        g.bench_with_input(BenchmarkId::new("fused", label(*n)), s, |b, s| {
            b.iter(|| fused_decode_mac(&e, black_box(&s.data_b64), &s.signature))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("json_typed");
    for (n, pt, _) in &inputs {
        g.throughput(Throughput::Bytes(pt.len() as u64));
        assert!(matches!(
            Resource::from_json(pt, Some(RESOURCE)),
            Ok(Resource::ChatMessage(_))
        ));
        g.bench_with_input(BenchmarkId::new("crate", label(*n)), pt, |b, pt| {
            b.iter(|| Resource::from_json(black_box(pt), Some(RESOURCE)).expect("json"))
        });
    }
    g.finish();
}

// ---- whole notification --------------------------------------------------------------------

#[cfg(feature = "openssl-bench")]
fn openssl_notification(
    item_json: &[u8],
    unwrap: &dyn Fn(&[u8]) -> Vec<u8>,
    thumbprint: &str,
) -> Resource {
    use openssl::base64::decode_block;
    let n: ChangeNotification = serde_json::from_slice(item_json).expect("item");
    let c = n.encrypted_content.as_ref().expect("content");
    assert!(
        c.encryption_certificate_thumbprint
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(thumbprint))
    );
    let sig = decode_block(c.data_signature.as_deref().expect("sig")).expect("b64");
    let wrapped = decode_block(c.data_key.as_deref().expect("key")).expect("b64");
    let data = decode_block(c.data.as_deref().expect("data")).expect("b64");
    let key = unwrap(&wrapped);
    assert!(openssl_hmac_verify(&key, &data, &sig));
    let mut out = Vec::new();
    openssl_aes_decrypt(&key, &data, &mut out);
    std::str::from_utf8(&out).expect("utf8");
    Resource::from_json(&out, n.resource.as_deref()).expect("json")
}

fn item_json(enc: &GraphEncryptor<'_>, size: usize) -> Vec<u8> {
    let resource: Value = serde_json::from_slice(&chat_message(size)).expect("json");
    let n = enc
        .notification(&resource, &NotificationSpec::new(TENANT, RESOURCE))
        .expect("notification");
    serde_json::to_vec(&n).expect("json")
}

fn bench_notification(c: &mut Criterion, k: &Keys) {
    let decryptor = Decryptor::with_key(
        PrivateKey::from_der(&k.pkcs8).expect("key"),
        Some(k.cert.clone()),
    )
    .expect("decryptor");
    let enc = GraphEncryptor::new(&k.cert, "bench").symmetric_key(&KEY);
    let items: Vec<(usize, Vec<u8>)> = SIZES.iter().map(|&n| (n, item_json(&enc, n))).collect();
    let whole = |json: &[u8]| {
        let n: ChangeNotification = serde_json::from_slice(json).expect("item");
        decryptor.decrypt_notification(&n).expect("decrypt")
    };

    let mut g = c.benchmark_group("notification");
    // The reference of the 1 KiB target, measured in the same group: one aws-lc-rs unwrap.
    #[cfg(feature = "aws-lc")]
    {
        let content = enc.encrypt(b"{}").expect("encrypt");
        let wrapped = b64(content.data_key.as_deref().expect("dataKey"));
        let unwrap = aws_lc_unwrap(&k.pkcs8);
        g.bench_with_input(
            BenchmarkId::new("aws-lc-rs-unwrap-only", k.bits),
            &wrapped,
            |b, w| b.iter(|| unwrap(black_box(w))),
        );
    }
    // The same work as `crate/1KiB` split in two: a bare aws-lc-rs unwrap, then the library's
    // path with the key given. Equal to `crate/1KiB` within noise, so the library adds nothing
    // between the two; both usually exceed unwrap + `except_rsa/from_json/1KiB` measured apart
    // (BENCHMARKS.md).
    #[cfg(feature = "aws-lc")]
    {
        let content = enc.encrypt(b"{}").expect("encrypt");
        let wrapped = b64(content.data_key.as_deref().expect("dataKey"));
        let unwrap = aws_lc_unwrap(&k.pkcs8);
        let (_, json) = &items[1];
        g.bench_with_input(
            BenchmarkId::new("unwrap-then-except-rsa", label(1024)),
            json,
            |b, j| {
                b.iter(|| {
                    let n: ChangeNotification = serde_json::from_slice(black_box(j)).expect("item");
                    let key = unwrap(black_box(&wrapped));
                    let d = decryptor
                        .decrypt_notification_with_symmetric_key(&n, &KEY)
                        .expect("decrypt");
                    (key, d)
                })
            },
        );
    }
    for (n, json) in &items {
        assert!(matches!(whole(json).resource, Resource::ChatMessage(_)));
        g.bench_with_input(BenchmarkId::new("crate", label(*n)), json, |b, j| {
            b.iter(|| whole(black_box(j)))
        });
        #[cfg(feature = "openssl-bench")]
        {
            let unwrap = openssl_unwrap(&k.pkcs8);
            let thumb = k.cert.thumbprint();
            assert!(matches!(
                openssl_notification(json, &unwrap, &thumb),
                Resource::ChatMessage(_)
            ));
            g.bench_with_input(BenchmarkId::new("openssl", label(*n)), json, |b, j| {
                b.iter(|| openssl_notification(black_box(j), &unwrap, &thumb))
            });
        }
    }
    g.finish();

    // Parts of `except_rsa` with no group of their own.
    let mut g = c.benchmark_group("item_parse");
    for (n, json) in &items {
        g.throughput(Throughput::Bytes(json.len() as u64));
        g.bench_with_input(BenchmarkId::new("crate", label(*n)), json, |b, j| {
            b.iter(|| serde_json::from_slice::<ChangeNotification>(black_box(j)).expect("item"))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("utf8_check");
    for &n in &SIZES {
        let pt = chat_message(n);
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("std", label(n)), &pt, |b, pt| {
            b.iter(|| std::str::from_utf8(black_box(pt)).is_ok())
        });
    }
    g.finish();
    // Dropping the decrypted buffer: `Zeroizing<Vec<u8>>` (what the library holds) against a
    // bulk zeroize of the same bytes (`<[u8]>::zeroize`, then the spare capacity).
    let mut g = c.benchmark_group("zeroize_drop");
    for &n in &SIZES {
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_function(BenchmarkId::new("zeroizing_vec", label(n)), |b| {
            b.iter_batched(
                || zeroize::Zeroizing::new(vec![1u8; n + 16]),
                drop,
                BatchSize::LargeInput,
            )
        });
        g.bench_function(BenchmarkId::new("bulk_slice", label(n)), |b| {
            b.iter_batched(
                || vec![1u8; n + 16],
                |mut v| {
                    use zeroize::Zeroize;
                    v.as_mut_slice().zeroize();
                    v.spare_capacity_mut().zeroize();
                    drop(v)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();

    // Every stage but the RSA unwrap, through the library's own path with the symmetric key
    // given (`decrypt_notification_with_symmetric_key`, testing only): `parsed` starts from the
    // parsed notification, `from_json` from the item's JSON.
    let mut g = c.benchmark_group("except_rsa");
    for (n, json) in &items {
        let parsed: ChangeNotification = serde_json::from_slice(json).expect("item");
        let except_rsa = |n: &ChangeNotification| {
            decryptor
                .decrypt_notification_with_symmetric_key(n, &KEY)
                .expect("decrypt")
        };
        assert_eq!(except_rsa(&parsed).resource, whole(json).resource);
        g.throughput(Throughput::Bytes(*n as u64));
        g.bench_with_input(BenchmarkId::new("parsed", label(*n)), &parsed, |b, p| {
            b.iter(|| except_rsa(black_box(p)))
        });
        g.bench_with_input(BenchmarkId::new("from_json", label(*n)), json, |b, j| {
            b.iter(|| {
                let n: ChangeNotification = serde_json::from_slice(black_box(j)).expect("item");
                except_rsa(&n)
            })
        });
    }
    g.finish();
}

// ---- tokens and the receiver ----------------------------------------------------------------

fn receiver(k: &Keys, issuer: &TokenIssuer, parallel: bool) -> Receiver {
    let decryptor = Decryptor::with_key(
        PrivateKey::from_der(&k.pkcs8).expect("key"),
        Some(k.cert.clone()),
    )
    .expect("decryptor");
    Receiver::builder(decryptor)
        .validation(Validation::new([APP]))
        .signing_keys(issuer.signing_keys())
        .client_state("bench-secret")
        .parallel(parallel)
        .build()
        .expect("receiver")
}

fn bench_tokens(c: &mut Criterion, k: &Keys, issuer: &TokenIssuer) {
    let token = issuer.token(TokenVersion::V2, APP, TENANT);
    let validator = TokenValidator::new(Validation::new([APP]), issuer.signing_keys());
    let valid = validator.validate(&token).expect("valid token");
    let cache = TokenCache::new(1024);
    cache.insert(&token, valid);

    let mut g = c.benchmark_group("token");
    g.bench_function("validate_first_time", |b| {
        b.iter(|| validator.validate(black_box(&token)).expect("valid"))
    });
    g.bench_function("cache_hit", |b| {
        b.iter(|| cache.get(black_box(&token), 300).expect("cached"))
    });

    // A whole receive whose token is cached and whose one item fails before RSA (its signature
    // has the wrong length): the cost of a repeated token inside the receiver, plus the body parse.
    let rx = receiver(k, issuer, false);
    let mut spec = NotificationSpec::new(TENANT, RESOURCE);
    spec.client_state = Some("bench-secret".into());
    let mut item = GraphEncryptor::new(&k.cert, "bench")
        .symmetric_key(&KEY)
        .notification(&json!({"@odata.type": "#microsoft.graph.presence"}), &spec)
        .expect("item");
    if let Some(EncryptedContent { data_signature, .. }) = item.encrypted_content.as_mut() {
        *data_signature = Some("AAAA".into());
    }
    let body = json!({"value": [item], "validationTokens": [token]}).to_string();
    let outcome = |rx: &Receiver| match rx.receive(None, body.as_bytes()).expect("reply") {
        Reply::Notifications(items) => items.into_iter().next().expect("item").outcome,
        _ => unreachable!(),
    };
    assert!(matches!(outcome(&rx), Outcome::Rejected(_)));
    g.bench_function("receive_cached_no_rsa", |b| {
        b.iter(|| outcome(black_box(&rx)))
    });
    g.finish();
}

fn bench_batch(c: &mut Criterion, k: &Keys, issuer: &TokenIssuer) {
    let mut spec = NotificationSpec::new(TENANT, RESOURCE);
    spec.client_state = Some("bench-secret".into());
    let enc = GraphEncryptor::new(&k.cert, "bench");
    let resource: Value = serde_json::from_slice(&chat_message(1024)).expect("json");
    let items: Vec<ChangeNotification> = (0..100)
        .map(|_| enc.notification(&resource, &spec).expect("item"))
        .collect();
    let body = json!({
        "value": items,
        "validationTokens": [issuer.token(TokenVersion::V2, APP, TENANT)],
    })
    .to_string();
    let run = |rx: &Receiver| match rx.receive(None, body.as_bytes()).expect("reply") {
        Reply::Notifications(items) => items.len(),
        _ => unreachable!(),
    };

    let mut g = c.benchmark_group("batch100");
    g.throughput(Throughput::Elements(100));
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for (name, parallel) in [("sequential", false), ("parallel", true)] {
        let rx = receiver(k, issuer, parallel);
        match rx.receive(None, body.as_bytes()).expect("reply") {
            Reply::Notifications(items) => assert!(
                items
                    .iter()
                    .all(|i| matches!(i.outcome, Outcome::Decrypted(_)))
            ),
            _ => unreachable!(),
        }
        g.bench_function(name, |b| b.iter(|| run(black_box(&rx))));
    }
    g.finish();
}

// ---- the Unwrap trait: in process and through a PKCS#11 token -------------------------------

fn bench_unwrap_trait(c: &mut Criterion, k: &Keys) {
    use msgraph_notify::keys::Unwrap;
    let content = GraphEncryptor::new(&k.cert, "bench")
        .symmetric_key(&KEY)
        .encrypt(b"{}")
        .expect("encrypt");
    let wrapped = b64(content.data_key.as_deref().expect("dataKey"));
    let mut g = c.benchmark_group("unwrap_trait");
    let in_process = PrivateKey::from_der(&k.pkcs8).expect("key");
    assert_eq!(
        Unwrap::unwrap_key(&in_process, &wrapped)
            .expect("unwrap")
            .as_slice(),
        KEY
    );
    g.bench_with_input(BenchmarkId::new("in-process", k.bits), &wrapped, |b, w| {
        b.iter(|| Unwrap::unwrap_key(&in_process, black_box(w)))
    });
    #[cfg(feature = "pkcs11")]
    if let Some(hsm) = test_support::softhsm::hsm(&["bench"]) {
        use msgraph_notify::keys::pkcs11::Pkcs11Key;
        let info = pkcs8::PrivateKeyInfoRef::try_from(k.pkcs8.as_slice()).expect("pkcs8");
        hsm.import(
            "bench",
            "bench",
            b"b",
            info.private_key.as_bytes(),
            Some(k.cert.der()),
        );
        let token = Pkcs11Key::open(&hsm.uri("bench", "bench")).expect("token key");
        assert_eq!(token.unwrap_key(&wrapped).expect("unwrap").as_slice(), KEY);
        g.bench_with_input(
            BenchmarkId::new("pkcs11-softhsm", k.bits),
            &wrapped,
            |b, w| b.iter(|| token.unwrap_key(black_box(w))),
        );
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let all: Vec<Keys> = [2048, 3072, 4096].into_iter().map(keys).collect();
    let k2048 = &all[0];
    let issuer = TokenIssuer::new().expect("issuer");
    bench_rsa(c, &all);
    bench_symmetric(c, k2048);
    bench_notification(c, k2048);
    bench_tokens(c, k2048, &issuer);
    bench_batch(c, k2048, &issuer);
    bench_unwrap_trait(c, k2048);
}

criterion_group! {
    name = pipeline;
    config = criterion();
    targets = benches
}
criterion_main!(pipeline);
