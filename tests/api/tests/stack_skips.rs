//! `tests/api/stack-skips.txt` names only cases that exist, each with a reason: a renamed case
//! must not silently stop running against the deployed stack.

#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn every_skipped_case_exists_and_says_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources: String = std::fs::read_dir(root.join("tests"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    let list = std::fs::read_to_string(root.join("stack-skips.txt")).unwrap();
    let entries: Vec<(&str, &str)> = list
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.split_once('|').expect("<name> | <why>"))
        .collect();
    assert!(!entries.is_empty());
    for (name, why) in entries {
        let name = name.trim();
        assert!(
            sources.contains(&format!("async fn {name}()")),
            "{name} is not a case of tests/api"
        );
        assert!(!why.trim().is_empty(), "{name} gives no reason");
    }
}
