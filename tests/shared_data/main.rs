//! Says in `cargo test`'s own output whether the tests that need the shared data ran.
//!
//! The tests of Graph's real vector (`tests/decrypt/real_vector.rs`), of the documentation's samples
//! (`tests/decrypt/samples.rs`) and the command's real-vector test skip when `../shared` (or
//! `$MSGRAPH_NOTIFY_SHARED`) is absent. A note printed by a test is captured by the test harness
//! and shown only with `--nocapture` or on failure, so the skip would pass unseen. This target is
//! built with `harness = false`: it is a plain program whose output goes straight to the terminal
//! of `cargo test`, so the note shows in every run. It exits 0 (a skip is not a failure), except
//! under `CI=true`, where the shared data is required and its absence fails the run.

fn main() {
    // The one rule of every test (test-support's `shared`), reported here in its own words.
    let dir = match test_support::shared::locate() {
        Ok(dir) => {
            println!(
                "shared test data: found at {}; the real-vector and sample tests ran on it",
                dir.display()
            );
            return;
        }
        Err(dir) => dir,
    };
    let note = format!(
        "the shared test data is absent at {}: the real-vector and sample tests \
         (tests/decrypt/real_vector.rs, tests/decrypt/samples.rs, the command's real-vector test) were SKIPPED. \
         Put Graph's vectors and the docs' samples there, or set MSGRAPH_NOTIFY_SHARED to their folder.",
        dir.display()
    );
    if test_support::ci() {
        eprintln!("error: {note} (CI=true requires them)");
        std::process::exit(1);
    }
    println!("NOTE: {note}");
}
