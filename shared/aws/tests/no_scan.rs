//! Request paths never Scan a DynamoDB table: every read is GetItem or Query on a key or index.

#[test]
fn the_dynamodb_adapters_never_call_scan() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
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
