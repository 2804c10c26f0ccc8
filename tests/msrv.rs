//! The minimum Rust version is one number: `rust-version` in `Cargo.toml`, repeated in the
//! README and the crate docs, and no lower than what any dependency needs with every feature
//! on.
//!
//! Only one toolchain can be installed where this project is built and tested, so no test
//! compiles the crate with the claimed version itself. What is checked instead: (1) here, that
//! no dependency resolved with `--all-features` declares a higher `rust-version`, and that the
//! three places agree; (2) by clippy, whose `incompatible_msrv` lint (on in CI through
//! `-D warnings`) refuses any standard-library item newer than `rust-version`.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `"1.88"` or `"1.88.0"` as `(1, 88, 0)`.
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|part| part.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn claimed() -> String {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|line| line.starts_with("rust-version"))
        .expect("Cargo.toml states a rust-version");
    line.split('"').nth(1).expect("rust-version is a quoted string").to_owned()
}

#[test]
fn the_readme_and_the_crate_docs_state_the_rust_version_of_cargo_toml() {
    let claimed = claimed();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap().replace('\n', " ");
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    assert!(
        readme.contains(&format!("Minimum Rust version: {claimed} ")),
        "README.md must say \"Minimum Rust version: {claimed}\" (Cargo.toml's rust-version)"
    );
    assert!(
        lib.contains(&format!("//! Minimum Rust version: {claimed},")),
        "src/lib.rs's crate docs must say \"Minimum Rust version: {claimed},\""
    );
    for (name, text) in [("README.md", &readme), ("src/lib.rs", &lib)] {
        for other in
            ["1.80", "1.81", "1.82", "1.83", "1.84", "1.85", "1.86", "1.87", "1.88", "1.89"]
        {
            if other != claimed {
                assert!(
                    !text.contains(&format!("Rust {other}")),
                    "{name} names Rust {other}, but the crate's one minimum is {claimed}"
                );
            }
        }
    }
}

#[test]
fn no_dependency_needs_a_newer_rust_than_the_crate_claims() {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--all-features", "--offline"])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let claimed_text = claimed();
    let claimed = version(&claimed_text);
    let resolved: std::collections::HashSet<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|node| node["id"].as_str())
        .collect();
    let mut too_new = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let Some(id) = package["id"].as_str() else { continue };
        let Some(needs) = package["rust_version"].as_str() else { continue };
        if resolved.contains(id) && version(needs) > claimed {
            too_new.push(format!("{} {} needs Rust {needs}", package["name"], package["version"]));
        }
    }
    assert!(
        too_new.is_empty(),
        "Cargo.toml claims rust-version {claimed_text}, but: {}; raise rust-version (and the \
         README and crate docs with it)",
        too_new.join("; ")
    );
}
