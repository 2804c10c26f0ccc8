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
/// result. Generated keys are cheap (no allocation for a function's name as prefix); the
/// text is made only when displayed.
///
/// A generated key's token is drawn from a random seed of its client, so keys differ between
/// clients, processes and restarts and cannot be predicted from earlier ones. They name tasks;
/// they are not secrets: anything that logs or displays a key reveals it, so do not use a key
/// as an access token (give a job its own random id for that).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TaskKey(KeyRepr);

// 24 bytes: a key sits in every job and every scheduler record, so a key with a prefix
// chosen at run time is stored as its whole text (`Named`) rather than as a third variant,
// which would make every key 32 bytes (measured: +24 bytes per pending task).
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

    /// A key made of a prefix chosen at run time (such as the `key` given to a `map`) and a
    /// token: `prefix-<16 hex digits>`. It is a named key with that text.
    pub fn prefixed(prefix: &str, token: u64) -> TaskKey {
        TaskKey::named(format!("{prefix}-{token:016x}"))
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

/// So that calls taking a task (such as [`Client::story`](crate::Client::story)) take its key
/// too.
impl AsRef<TaskKey> for TaskKey {
    fn as_ref(&self) -> &TaskKey {
        self
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

/// Structured keys, as Dask's tuple keys: `("x", 3)` names the task `("x", 3)`, so a family
/// of tasks can be keyed by a name and an index wherever a key is accepted.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::new()?;
/// let parts = client.task().map_with_keys(|x: u32| x * 2, (0..3u32).map(|i| (("part", i), i)));
/// assert_eq!(parts[2].key().to_string(), r#"("part", 2)"#);
/// let again = client.task().key(("part", 2u32)).submit(|x: u32| x, 99);
/// assert_eq!(again.result()?, 4, "the same structured key is the same task");
/// # Ok(()) }
/// ```
macro_rules! structured_keys {
    ($($index:ty),+) => {
        $(
            impl From<(&str, $index)> for TaskKey {
                fn from((name, index): (&str, $index)) -> TaskKey {
                    TaskKey::named(format!("({name:?}, {index})"))
                }
            }

            impl From<(&str, $index, $index)> for TaskKey {
                fn from((name, first, second): (&str, $index, $index)) -> TaskKey {
                    TaskKey::named(format!("({name:?}, {first}, {second})"))
                }
            }
        )+
    };
}

structured_keys!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

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

/// Draws the tokens of one client's generated keys: SipHash-1-3 (the function behind std's
/// `DefaultHasher`) of a counter, keyed with a 128-bit random seed. Tokens are unique within
/// the client, differ between clients (each draws its own seed), and one token says nothing
/// about the next: the seed never leaves the generator.
///
/// The seed is the hash's key rather than part of its input, so a token hashes one 8-byte
/// block instead of three through `DefaultHasher`'s buffered writes: a fresh key costs 124
/// instructions instead of 313 (callgrind), about 5% of a submission.
#[derive(Debug)]
pub struct KeyTokens {
    seed: [u64; 2],
    counter: std::sync::atomic::AtomicU64,
}

impl KeyTokens {
    /// A generator seeded with two random numbers (see `Executor::random_seed`).
    pub fn new(seed: [u64; 2]) -> KeyTokens {
        KeyTokens { seed, counter: std::sync::atomic::AtomicU64::new(0) }
    }

    /// The next token.
    pub fn next_token(&self) -> u64 {
        let count = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sip13_of_u64(self.seed, count)
    }
}

/// SipHash-1-3 of the 8 little-endian bytes of `message`, keyed with `key`.
fn sip13_of_u64(key: [u64; 2], message: u64) -> u64 {
    use std::hash::Hasher;
    let mut hasher = siphasher::sip::SipHasher13::new_with_keys(key[0], key[1]);
    hasher.write_u64(message);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_displays_prefix_and_hex_token() {
        assert_eq!(TaskKey::generated("inc", 255).to_string(), "inc-00000000000000ff");
    }

    #[test]
    fn a_prefixed_key_reads_like_a_generated_one_in_24_bytes() {
        assert_eq!(TaskKey::prefixed("inc", 7).to_string(), "inc-0000000000000007");
        assert_eq!(TaskKey::prefixed("inc", 7), TaskKey::named("inc-0000000000000007"));
        assert_eq!(size_of::<TaskKey>(), 24);
    }

    #[test]
    fn tokens_of_two_seeds_differ_and_never_repeat() {
        let first = KeyTokens::new([1, 2]);
        let second = KeyTokens::new([1, 3]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(first.next_token()));
            assert!(seen.insert(second.next_token()));
        }
    }

    #[test]
    fn the_token_hash_is_siphash_1_3() {
        // SipHash-1-3 under the key (0, 0) of each number's 8 little-endian bytes, as std's
        // `DefaultHasher::new()` (SipHash-1-3 with that key) computed them on Rust 1.95.
        let expected: [(u64, u64); 5] = [
            (0, 0xbd60_acb6_58c7_9e45),
            (1, 0x1e9f_7341_61d6_2dd9),
            (0xff, 0xfdac_8a69_8572_a86d),
            (0x0123_4567_89ab_cdef, 0x8662_046e_5226_4db8),
            (u64::MAX, 0x2f20_5be2_fec8_e38d),
        ];
        for (message, hash) in expected {
            assert_eq!(sip13_of_u64([0, 0], message), hash, "{message:#x}");
        }
        // The key matters in both halves.
        let plain = sip13_of_u64([0, 0], 7);
        assert_ne!(sip13_of_u64([1, 0], 7), plain);
        assert_ne!(sip13_of_u64([0, 1], 7), plain);
    }

    #[test]
    fn structured_keys_read_like_tuples() {
        assert_eq!(TaskKey::from(("x", 3_u8)).to_string(), r#"("x", 3)"#);
        assert_eq!(TaskKey::from(("x", -1_i64, 2_i64)).to_string(), r#"("x", -1, 2)"#);
        assert_eq!(TaskKey::from(("x", 3_u32)), TaskKey::from(("x", 3_i64)));
    }

    #[test]
    fn prefix_comes_from_the_last_path_segment() {
        assert_eq!(prefix_for_type_name("my_crate::math::inc"), "inc");
        assert_eq!(prefix_for_type_name("my_crate::main::{{closure}}"), "closure");
        assert_eq!(prefix_for_type_name("my_crate::add<i64>"), "add");
        assert_eq!(prefix_for_type_name("inc"), "inc");
    }
}
