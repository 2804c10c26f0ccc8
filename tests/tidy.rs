//! Tidy checks that keep the architecture's rules true (DESIGN §2–3), run as ordinary tests.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Lines of code, without comments (so that docs may name what code must not use).
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let trimmed = line.trim_start();
            !(trimmed.starts_with("//") || trimmed.starts_with("*"))
        })
        .map(|(index, line)| (index + 1, line.to_owned()))
        .collect()
}

/// Outside the executor seam nothing makes a thread, sleeps, reads the clock or blocks on a
/// channel, so that a simulated executor can run everything.
#[test]
fn only_the_executor_seam_touches_threads_clocks_and_blocking_waits() {
    let forbidden = [
        "thread::spawn",
        "thread::Builder",
        "thread::sleep",
        "Instant::now",
        "SystemTime::now",
        ".recv()",
        ".recv_timeout(",
        "block_on(",
    ];
    // The executor trait's default methods, and the caller's own thread in the blocking view.
    let allowed_files = ["src/executor.rs", "src/client/blocking.rs"];
    let mut offences = Vec::new();
    for file in rust_files(&root().join("src")) {
        let relative = file.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
        // The conformance suite (feature `testing`) is a user's test, not the library: it
        // drives a client from plain threads and gates bodies with blocking channels.
        if allowed_files.contains(&relative.as_str()) || relative.starts_with("src/testing/") {
            continue;
        }
        for (number, line) in code_lines(&file) {
            for pattern in forbidden {
                // An async channel's `recv()` (async-channel) is a future: awaited or pinned
                // to be raced, it blocks nothing.
                let awaited = pattern == ".recv()"
                    && (line.contains(".recv().await") || line.contains("pin!("));
                if line.contains(pattern) && !awaited {
                    offences.push(format!("{relative}:{number}: `{pattern}` in `{}`", line.trim()));
                }
            }
        }
    }
    assert!(offences.is_empty(), "go through the Executor instead:\n{}", offences.join("\n"));
}

/// Only `runtimes/` names a runtime crate.
#[test]
fn only_runtime_adapters_name_a_runtime() {
    let runtime_crates = ["tokio::", "smol::", "async_std::"];
    let mut offences = Vec::new();
    for file in rust_files(&root().join("src")) {
        let relative = file.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
        if relative == "src/runtimes.rs" {
            continue; // mounts the adapters
        }
        for (number, line) in code_lines(&file) {
            for name in runtime_crates {
                if line.contains(name) && !line.contains("crate::runtimes") {
                    offences.push(format!("{relative}:{number}: `{}`", line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "move runtime-specific code to runtimes/:\n{}",
        offences.join("\n")
    );
}

/// The scheduler is pure: it imports nothing from the client, transports, workers or runtimes.
#[test]
fn scheduler_depends_on_nothing_above_it() {
    let layers_above = [
        "crate::client",
        "crate::transport",
        "crate::worker",
        "crate::runtimes",
        "crate::executor",
    ];
    let mut offences = Vec::new();
    for file in rust_files(&root().join("src/scheduler")) {
        for (number, line) in code_lines(&file) {
            for layer in layers_above {
                if line.contains(layer) {
                    offences.push(format!("{}:{number}: `{}`", file.display(), line.trim()));
                }
            }
        }
    }
    assert!(offences.is_empty(), "the scheduler must stay pure:\n{}", offences.join("\n"));
}
