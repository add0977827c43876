//! `decrypt` of one collection larger than the slices it is decided in (512 items): every item
//! out once, in order, with its own plaintext; a forged item in a later slice rejected alone;
//! `| head` ends quietly however many slices remain.

use crate::common::*;
use serde_json::Value;

/// 1,100 genuine items (three slices), the 1,050th forged with another item's signature.
fn collection(fx: &Fixture) -> Vec<u8> {
    let mut items: Vec<Value> = (0..1100)
        .map(|i| fx.item(&Fixture::presence(&format!("user-{i}"))))
        .collect();
    items[1049]["encryptedContent"]["dataSignature"] =
        items[3]["encryptedContent"]["dataSignature"].clone();
    fx.body(items)
}

fn decrypt_args(fx: &Fixture, path: &str) -> Vec<String> {
    let mut args = vec!["decrypt".to_owned(), "--max-items".into(), "2000".into()];
    args.extend(fx.receiver_args());
    args.push(path.to_owned());
    args
}

#[test]
fn a_collection_of_three_slices_comes_out_whole_and_in_order() {
    let fx = Fixture::new();
    let path = fx.path("large.json");
    std::fs::write(&path, collection(&fx)).unwrap();
    let args = decrypt_args(&fx, &s(&path));
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "one item rejected: {stderr}");
    let items = lines(&out);
    assert_eq!(items.len(), 1100, "{stderr}");
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["index"], i);
        if i == 1049 {
            assert_eq!(item["status"], "rejected", "{item}");
        } else {
            assert_eq!(item["status"], "decrypted", "{item}");
            assert_eq!(item["data"]["id"], format!("user-{i}"));
        }
    }
    assert!(
        stderr.contains("1100 items (1099 decrypted, 1 rejected), in "),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_stops_early_ends_the_run_quietly() {
    let fx = Fixture::new();
    let path = fx.path("large.json");
    std::fs::write(&path, collection(&fx)).unwrap();
    let args = decrypt_args(&fx, &s(&path));
    let mut child = bin()
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe, as `| head -1` does.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["index"], 0);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}
