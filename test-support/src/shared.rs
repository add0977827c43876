//! THE rule for finding the shared test data (Graph's vectors, the docs' samples): the folder
//! named by `MSGRAPH_NOTIFY_SHARED` (an absolute path; a relative one is taken from the workspace
//! root, as `.ci/run` reads it), else `<workspace>/../shared`. It is there when it holds
//! `vectors/`. Absent, a test says so and skips, except under `CI=true`, where absence fails it.

use std::path::{Path, PathBuf};

/// The workspace root (the library's folder).
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace")
}

/// Where the shared data should be: `Ok` when it is there, `Err` with the folder looked at when
/// it is not. Says nothing and never fails: for callers that report absence their own way.
pub fn locate() -> Result<PathBuf, PathBuf> {
    let dir = match std::env::var_os("MSGRAPH_NOTIFY_SHARED") {
        Some(dir) => workspace().join(dir),
        None => workspace().join("../shared"),
    };
    if dir.join("vectors").is_dir() {
        Ok(dir)
    } else {
        Err(dir)
    }
}

/// The shared folder; `None` (with a note) when it is absent, except under `CI=true`, where
/// absence fails the test.
pub fn shared_dir() -> Option<PathBuf> {
    match locate() {
        Ok(dir) => Some(dir),
        Err(dir) => {
            assert!(
                !crate::ci(),
                "the shared test data is missing at {} (CI=true)",
                dir.display()
            );
            eprintln!(
                "skipping: the shared test data is absent at {} (set MSGRAPH_NOTIFY_SHARED)",
                dir.display()
            );
            None
        }
    }
}

/// The real Graph vector's folder.
pub fn vector_dir() -> Option<PathBuf> {
    shared_dir().map(|d| d.join("vectors/dotnet-sdk"))
}
