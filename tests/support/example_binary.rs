//! Builds one of the crate's examples for a test that runs it as its user would: with the
//! features this test was built with, so that cargo reuses the library build the test
//! already has instead of making another one, into the test's own target directory.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;

/// The crate's features that are on in this build.
fn features_of_this_build() -> Vec<&'static str> {
    [
        ("progress", cfg!(feature = "progress")),
        ("tokio", cfg!(feature = "tokio")),
        ("smol", cfg!(feature = "smol")),
        ("async-std", cfg!(feature = "async-std")),
        ("sim", cfg!(feature = "sim")),
        ("redis", cfg!(feature = "redis")),
        ("redis-tls", cfg!(feature = "redis-tls")),
        ("testing", cfg!(feature = "testing")),
        ("dashboard", cfg!(feature = "dashboard")),
        ("__planted", cfg!(feature = "__planted")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// Builds the example `name` (once per test binary) and returns the path of its binary.
/// Panics, naming the example, if cargo cannot build it.
pub(crate) fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    // This test runs from `<target>/<profile>/deps/`; the example lands in
    // `<target>/<profile>/examples/`.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("a target directory");
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if built.get_or_insert_with(HashSet::new).insert(name.to_owned()) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut command = std::process::Command::new(cargo);
        // Cargo set these for this test; passed on, they would differ from what a plain
        // build sees and make cargo rebuild crates whose build scripts read them (ring, say).
        for (variable, _) in std::env::vars_os() {
            let variable = variable.to_string_lossy();
            let set_for_this_crate =
                ["CARGO_PKG_", "CARGO_CRATE_", "CARGO_MANIFEST_", "CARGO_BIN_"]
                    .iter()
                    .any(|prefix| variable.starts_with(prefix));
            if set_for_this_crate
                || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*variable)
            {
                command.env_remove(&*variable);
            }
        }
        let status = command
            .args(["build", "--quiet", "--example", name, "--no-default-features"])
            .args(["--features", &features_of_this_build().join(",")])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .unwrap_or_else(|error| {
                panic!("could not run cargo to build the {name} example: {error}")
            });
        assert!(status.success(), "cargo could not build the {name} example");
    }
    profile_dir.join("examples").join(name)
}
