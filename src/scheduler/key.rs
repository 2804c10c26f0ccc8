//! Task identities: [`TaskId`] (a number, unique within one client) and [`TaskKey`] (the name
//! users see, as in Dask: `inc-1f3a...`).

use std::fmt;
use std::sync::Arc;

/// The scheduler's handle for one task: unique within one client, cheap to copy and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

/// The name of a task, as users see it: `prefix-<16 hex digits>`, or a name the user chose.
///
/// Keys are what Dask calls keys: two submissions with the same key share one task and one
/// result. Generated keys are cheap (no allocation); the text is made only when displayed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TaskKey(KeyRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    Generated { prefix: &'static str, token: u64 },
    Named(Arc<str>),
}

impl TaskKey {
    /// A key made of a readable prefix (usually the function's name) and a token.
    pub fn generated(prefix: &'static str, token: u64) -> TaskKey {
        TaskKey(KeyRepr::Generated { prefix, token })
    }

    /// A key with exactly the given name.
    pub fn named(name: impl Into<Arc<str>>) -> TaskKey {
        TaskKey(KeyRepr::Named(name.into()))
    }

    /// The readable part of the key: the function name for generated keys, the whole name for
    /// named ones.
    pub fn prefix(&self) -> &str {
        match &self.0 {
            KeyRepr::Generated { prefix, .. } => prefix,
            KeyRepr::Named(name) => name,
        }
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            KeyRepr::Generated { prefix, token } => write!(f, "{prefix}-{token:016x}"),
            KeyRepr::Named(name) => f.write_str(name),
        }
    }
}

impl fmt::Debug for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskKey({self})")
    }
}

impl From<&str> for TaskKey {
    fn from(name: &str) -> TaskKey {
        TaskKey::named(name)
    }
}

impl From<String> for TaskKey {
    fn from(name: String) -> TaskKey {
        TaskKey::named(name)
    }
}

/// A readable prefix for a function type's name: `inc` for `my_crate::inc`, `closure` for a
/// closure (whose type name says only where it was written).
pub fn prefix_for_type_name(type_name: &'static str) -> &'static str {
    // Strip generic arguments first: `a::b::f<i64>` -> `a::b::f`.
    let without_generics = match type_name.find('<') {
        Some(index) => &type_name[..index],
        None => type_name,
    };
    if without_generics.ends_with("{{closure}}") {
        return "closure";
    }
    // The last path segment. Scanned by hand: this runs on every submission, and
    // `rsplit("::")` sets up a substring searcher each time (measured: ~10% of a submit).
    let bytes = without_generics.as_bytes();
    let start = (1..bytes.len())
        .rev()
        .find(|&index| bytes[index] == b':' && bytes[index - 1] == b':')
        .map_or(0, |index| index + 1);
    &without_generics[start..]
}

/// Mixes a counter into a well-spread 64-bit token (splitmix64), so that generated keys look
/// like hashes and do not collide across counters.
pub fn spread_token(counter: u64) -> u64 {
    let mut z = counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_displays_prefix_and_hex_token() {
        assert_eq!(TaskKey::generated("inc", 255).to_string(), "inc-00000000000000ff");
    }

    #[test]
    fn prefix_comes_from_the_last_path_segment() {
        assert_eq!(prefix_for_type_name("my_crate::math::inc"), "inc");
        assert_eq!(prefix_for_type_name("my_crate::main::{{closure}}"), "closure");
        assert_eq!(prefix_for_type_name("my_crate::add<i64>"), "add");
        assert_eq!(prefix_for_type_name("inc"), "inc");
    }
}
