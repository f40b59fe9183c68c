//! Request paths never Scan a DynamoDB table: every read is GetItem or Query on a key or index.

use std::path::{Path, PathBuf};

/// Every source file under `dir`, at any depth.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_dynamodb_adapters_never_call_scan() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src);
    assert!(files.iter().any(|f| f.ends_with("dynamo/mod.rs")));
    for path in files {
        let code = std::fs::read_to_string(&path).expect("source");
        for forbidden in [".scan()", "ScanInput", "operation::scan"] {
            assert!(
                !code.contains(forbidden),
                "{} calls Scan ({forbidden})",
                path.display()
            );
        }
    }
}
