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
        // The task events' cheap clock (`SystemTicks`) reads the time-stamp counter here too.
        "quanta::",
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
                // The simulation's own tests drive the simulated executor with
                // `SimExecutor::block_on`, which runs simulated time on the calling thread and
                // waits on nothing real.
                let simulated = pattern == "block_on("
                    && relative.starts_with("src/sim/")
                    && line.contains(".block_on(async");
                if line.contains(pattern) && !awaited && !simulated {
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

/// The layers of the crate, by top-level module (`src/<module>.rs` or `src/<module>/`;
/// `runtimes/` is mounted by `src/runtimes.rs`), and the arrows between them: a module
/// imports from itself, from the modules its arrows name, and from the neutral modules —
/// nothing else, so nothing runs back up a layer. ARCHITECTURE.md's "Layers" block states
/// the same arrows (checked below).
const ARROWS: &[(&str, &[&str])] = &[
    // The simulation harness (`src/sim/`, feature `sim`: `SimRedis` and the Redis model)
    // drives the transports and workers from above.
    ("sim", &["transport", "worker", "runtimes", "executor"]),
    // The exported conformance suite (feature `testing`) uses the crate as a user does.
    ("testing", &["client", "scheduler", "worker", "executor"]),
    ("progress", &["client", "executor"]),
    // Performance reports read a client's events and stats, as a user would.
    ("report", &["client"]),
    // The live dashboard (feature `dashboard`) reads the client; its server thread lives
    // with the runtime adapters (`runtimes/server.rs`), which alone name tokio.
    ("dashboard", &["client", "transport", "runtimes"]),
    ("client", &["scheduler", "transport", "executor", "runtimes"]),
    ("worker", &["transport", "executor", "runtimes"]),
    ("transport", &["executor"]),
    ("runtimes", &["executor"]),
    ("scheduler", &[]),
    ("executor", &[]),
];

/// Modules every layer may use, which themselves use only each other: the error types, the
/// `Task` trait, task keys, the jobs that cross the client/transport seam, and the planted
/// bugs (which exist only with the internal `__planted` feature).
const NEUTRAL: &[&str] = &["error", "task", "key", "job", "planted"];

/// The top-level module a file belongs to; `None` for the crate root.
fn top_module(relative: &str) -> Option<String> {
    let parts: Vec<&str> = relative.split('/').collect();
    match parts.as_slice() {
        ["runtimes", ..] => Some("runtimes".to_owned()),
        ["src", "lib.rs"] => None,
        ["src", file] => Some(file.trim_end_matches(".rs").to_owned()),
        ["src", dir, ..] => Some((*dir).to_owned()),
        _ => None,
    }
}

/// Which top-level module each name the crate root re-exports comes from (`crate::Error` is
/// `error`'s).
fn root_reexports() -> std::collections::HashMap<String, String> {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let mut names = std::collections::HashMap::new();
    for statement in lib.split(';') {
        let Some(start) = statement.find("pub use ") else { continue };
        let path = &statement[start + "pub use ".len()..];
        let Some((module, rest)) = path.split_once("::") else { continue };
        for name in rest.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if name.starts_with(|c: char| c.is_uppercase()) || !name.is_empty() {
                names.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    names
}

/// Every `crate::<module>` a file's code names (outside comments and unit-test modules),
/// with its line number.
fn crate_references(path: &Path) -> Vec<(usize, String, String)> {
    let reexports = root_reexports();
    let mut found = Vec::new();
    let mut in_tests = false;
    let mut previous = String::new();
    for (number, line) in code_lines(path) {
        // Unit tests may drive the whole crate: the `#[cfg(test)] mod` that ends a file.
        if previous.trim() == "#[cfg(test)]" && line.trim_start().starts_with("mod ") {
            in_tests = true;
        }
        previous = line.clone();
        if in_tests {
            continue;
        }
        let mut rest = line.as_str();
        while let Some(index) = rest.find("crate::") {
            let before = rest[..index].chars().last();
            let after = &rest[index + "crate::".len()..];
            rest = after;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `my_crate::`, in a string
            }
            if let Some(group) = after.strip_prefix('{') {
                // `crate::{A, b::C}`: each name in the group, by its first segment.
                let group = group.split('}').next().unwrap_or_default();
                for item in group.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        let module = reexports.get(&name).cloned().unwrap_or(name);
                        found.push((number, module, line.trim().to_owned()));
                    }
                }
                continue;
            }
            let name: String =
                after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if after[name.len()..].starts_with('!') {
                continue; // `crate::some_macro!`: exported macros live at the root
            }
            let module = reexports.get(&name).cloned().unwrap_or(name);
            found.push((number, module, line.trim().to_owned()));
        }
    }
    found
}

/// Every import between top-level modules, as (from, to, where).
fn module_imports() -> Vec<(String, String, String)> {
    let mut imports = Vec::new();
    for dir in ["src", "runtimes"] {
        for file in rust_files(&root().join(dir)) {
            let relative = file.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
            let Some(from) = top_module(&relative) else { continue };
            for (number, to, line) in crate_references(&file) {
                if to != from {
                    imports.push((from.clone(), to, format!("{relative}:{number}: `{line}`")));
                }
            }
        }
    }
    imports
}

fn allowed(from: &str, to: &str) -> bool {
    if NEUTRAL.contains(&from) {
        return NEUTRAL.contains(&to);
    }
    NEUTRAL.contains(&to)
        || ARROWS.iter().any(|(module, targets)| *module == from && targets.contains(&to))
}

/// No import runs back up a layer: every `crate::…` path follows an arrow of [`ARROWS`].
#[test]
fn imports_follow_the_layers_one_way() {
    let mut offences = Vec::new();
    for (from, to, place) in module_imports() {
        let known =
            NEUTRAL.contains(&from.as_str()) || ARROWS.iter().any(|(module, _)| *module == from);
        if !known {
            offences.push(format!("{place}: module `{from}` is not in tidy's ARROWS table"));
        } else if !allowed(&from, &to) {
            offences.push(format!("{place}: `{from}` must not import `{to}`"));
        }
    }
    assert!(
        offences.is_empty(),
        "imports against the layers (see ARROWS in tests/tidy.rs and ARCHITECTURE.md; move \
         the shared item down, into a neutral module, or pass it in as a value):\n{}",
        offences.join("\n")
    );
}

/// The arrows themselves, and the imports actually made, form no cycle between top-level
/// modules.
#[test]
fn there_are_no_cycles_between_top_level_modules() {
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for (from, targets) in ARROWS {
        edges.entry((*from).to_owned()).or_default().extend(targets.iter().map(|t| t.to_string()));
    }
    for (from, to, _) in module_imports() {
        edges.entry(from).or_default().insert(to);
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("a cycle between top-level modules: {}", cycle.join(" → "));
        }
    }
}

/// ARCHITECTURE.md's "Layers" block (between `<!-- layers -->` and the end of its fenced
/// block) draws exactly the arrows of [`ARROWS`] and names the neutral modules of
/// [`NEUTRAL`].
#[test]
fn the_architecture_diagram_states_the_checked_arrows() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let block = text
        .split_once("<!-- layers -->")
        .and_then(|(_, after)| after.split_once("```").map(|(_, block)| block))
        .and_then(|block| block.split_once("```").map(|(block, _)| block))
        .expect("ARCHITECTURE.md has a fenced block after `<!-- layers -->`");
    let mut drawn = std::collections::BTreeSet::new();
    let mut neutral = std::collections::BTreeSet::new();
    for line in block.lines().skip(1) {
        if let Some(names) = line.trim().strip_prefix("neutral:") {
            neutral.extend(names.split(',').map(|name| name.trim().to_owned()));
            continue;
        }
        let nodes: Vec<String> = line
            .split("──►")
            .map(|node| node.split_whitespace().next().unwrap_or("").to_owned())
            .collect();
        for pair in nodes.windows(2) {
            drawn.insert((pair[0].clone(), pair[1].clone()));
        }
    }
    let table: std::collections::BTreeSet<(String, String)> = ARROWS
        .iter()
        .flat_map(|(from, targets)| targets.iter().map(|to| (from.to_string(), to.to_string())))
        .collect();
    assert_eq!(drawn, table, "ARCHITECTURE.md's layers block must draw exactly tidy's ARROWS");
    let listed: std::collections::BTreeSet<String> =
        NEUTRAL.iter().map(|name| name.to_string()).collect();
    assert_eq!(neutral, listed, "ARCHITECTURE.md's `neutral:` line must list tidy's NEUTRAL");
}

/// Planted bugs exist only with the internal `__planted` feature: every mention of `planted`
/// in `src/` code sits in an item, statement, field or match arm under
/// `#[cfg(feature = "__planted")]` (and `src/planted.rs` is mounted that way), so a user
/// build has no planted symbol, switch or thread-local.
#[test]
fn planted_bugs_exist_only_under_the_internal_feature() {
    const GATE: &str = "#[cfg(feature = \"__planted\")]";
    let mut offences = Vec::new();
    for file in rust_files(&root().join("src")) {
        let relative = file.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
        if relative == "src/planted.rs" {
            continue; // mounted under the gate in src/lib.rs, checked there
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let mut depth: i64 = 0;
        // The depth at which a gated item started, while inside it.
        let mut gated_from: Option<i64> = None;
        let mut gate_pending = false;
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with("//") || trimmed.is_empty() {
                continue;
            }
            if trimmed == GATE {
                gate_pending = true;
                continue;
            }
            if trimmed.starts_with("#[") && gate_pending {
                continue; // more attributes of the gated item
            }
            if gate_pending && gated_from.is_none() {
                gated_from = Some(depth);
            }
            gate_pending = false;
            let names_the_feature =
                trimmed.starts_with("#[cfg(") && trimmed.contains("\"__planted\"");
            if trimmed.to_lowercase().contains("planted")
                && gated_from.is_none()
                && !names_the_feature
            {
                offences.push(format!("{relative}:{}: `{trimmed}`", index + 1));
            }
            depth += trimmed.matches('{').count() as i64 - trimmed.matches('}').count() as i64;
            if let Some(start) = gated_from {
                let ends = [";", "}", "},", ","].iter().any(|end| trimmed.ends_with(end));
                if depth <= start && ends {
                    gated_from = None;
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "put planted-bug code under {GATE} (nothing test-only in user builds):\n{}",
        offences.join("\n")
    );
}

/// A message split over lines without a `\` at the line's end keeps the next line's
/// indentation inside the string ("do                  not call"): no string literal in the
/// library or the runtime adapters has a run of 3 or more spaces between two words.
#[test]
fn no_message_carries_a_lost_line_break() {
    let mut found = Vec::new();
    for dir in ["src", "runtimes"] {
        for path in rust_files(&root().join(dir)) {
            for (number, line) in code_lines(&path) {
                // The text between the first and the last quote of the line, if any.
                let (Some(first), Some(last)) = (line.find('"'), line.rfind('"')) else {
                    continue;
                };
                if first == last {
                    continue;
                }
                let literal = &line[first + 1..last];
                let bytes = literal.as_bytes();
                let gap = literal.find("   ").filter(|&at| {
                    let end = at + literal[at..].find(|c: char| c != ' ').unwrap_or(0);
                    at > 0 && bytes[at - 1] != b' ' && end < bytes.len() && end > at
                });
                if gap.is_some() {
                    found.push(format!("{}:{number}: {}", path.display(), line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "string literals with a lost line break:\n{}", found.join("\n"));
}
