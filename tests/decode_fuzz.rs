//! Fuzzing every decoder of what crosses Redis, with [bolero]: whatever a stream entry, a
//! completion, a result payload or a reply of the server (or of our Lua scripts) holds,
//! decoding returns a value or a typed error that says what was wrong, and never panics; and
//! what the client writes decodes back to itself.
//!
//! Each harness is an ordinary `#[test]`: under `cargo test` bolero runs it on a fixed number
//! of random inputs (`ITERATIONS`; a failure prints the seed, replay it with
//! `BOLERO_RANDOM_SEED=<seed>`). For deeper, coverage-guided fuzzing with libFuzzer, install
//! `cargo-bolero` (`cargo install cargo-bolero`; CI does not need it) and run one harness at a
//! time on a nightly toolchain, for example for a minute:
//!
//! ```text
//! cargo +nightly bolero test --all-features --test decode_fuzz -T 60s \
//!     any_reply_value_decodes_or_fails_with_a_typed_error
//! ```
//!
//! It builds with the `fuzz` profile of `Cargo.toml` and keeps its corpus and crashes in
//! a `__fuzz__/` folder beside it (ignored by git).
//!
//! The harnesses:
//! - **task entries and completions** — [`TaskEntry::decode`], [`Reply::decode`] and
//!   [`Status::parse`] on typed field lists (names the decoders look for, plausible values,
//!   arbitrary bytes) and on raw bytes cut into fields;
//! - **server replies** — the decoders of `redis_store.rs` (`XREAD`/`XREADGROUP` replies,
//!   `claim.lua`'s XAUTOCLAIM-plus-XPENDING reply, `begin.lua`, the owner-checked scripts'
//!   ownership and counts, `MGET`) on typed [`Value`] trees (any shape, and replies of the
//!   right shape with wrong parts), and on raw bytes parsed as RESP;
//! - **result payloads** — a dependent task's input composed from its dependencies' stored
//!   outputs ([`dependency_input`]), from arbitrary bytes;
//! - **round trip** — an entry the client writes decodes back to itself.
//!
//! [bolero]: https://docs.rs/bolero

use bolero::TypeGenerator;
use bolero::check;
use redis::Value;

use taskweave::Task;
use taskweave::sim::redis::internals::{
    Keys, Reply, Status, TaskEntry, begin_reply, claim_reply, count_reply, dependency_input,
    ownership_of, pack_fields, read_reply, values_reply,
};

/// Random inputs per harness under `cargo test` (bounded by count, not by time).
const ITERATIONS: usize = 2_000;

/// Field names the decoders look for, so that the fuzzer reaches past the first missing one.
const NAMES: [&str; 16] = [
    "v",
    "task",
    "key",
    "rid",
    "result",
    "reply",
    "max_deliveries",
    "ttl_ms",
    "input",
    "deps",
    "status",
    "body",
    "deliveries",
    "worker",
    "started_us",
    "finished_us",
];

/// Plausible values: numbers at the edges, statuses, JSON, key-shaped text.
const VALUES: [&str; 17] = [
    "1",
    "0",
    "-1",
    "18446744073709551616",
    "ok",
    "failed",
    "panicked",
    "lost",
    "rejected",
    "[]",
    "[\"a\"]",
    "[\"taskweave:result:c1:1\"]",
    "[1,2",
    "null",
    "taskweave:reply:c1",
    "taskweave:result:c1:1",
    "",
];

/// Short arbitrary bytes.
#[derive(Debug, TypeGenerator)]
struct Bytes(#[generator(bolero::produce::<Vec<u8>>().with().len(0usize..24))] Vec<u8>);

/// A field name: a known one or arbitrary bytes.
#[derive(Debug, TypeGenerator)]
enum Name {
    Known(#[generator(0..NAMES.len())] usize),
    Raw(Bytes),
}

/// A field value: a plausible one or arbitrary bytes.
#[derive(Debug, TypeGenerator)]
enum FieldValue {
    Plausible(#[generator(0..VALUES.len())] usize),
    Raw(Bytes),
}

/// A stream entry's fields, as a worker or a client reads them.
#[derive(Debug, TypeGenerator)]
struct Entry(
    #[generator(bolero::produce::<Vec<(Name, FieldValue)>>().with().len(0usize..14))]
    Vec<(Name, FieldValue)>,
);

impl Name {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Name::Known(index) => NAMES[*index].as_bytes().to_vec(),
            Name::Raw(bytes) => bytes.0.clone(),
        }
    }
}

impl FieldValue {
    fn bytes(&self) -> Vec<u8> {
        match self {
            FieldValue::Plausible(index) => VALUES[*index].as_bytes().to_vec(),
            FieldValue::Raw(bytes) => bytes.0.clone(),
        }
    }
}

impl Entry {
    fn fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.0.iter().map(|(name, value)| (name.bytes(), value.bytes())).collect()
    }
}

/// Raw bytes cut into field-value pairs at `0xff` (a byte no decoder looks for).
fn fields_of_bytes(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let parts: Vec<&[u8]> = bytes.split(|byte| *byte == 0xff).collect();
    parts
        .chunks(2)
        .map(|pair| (pair[0].to_vec(), pair.get(1).unwrap_or(&&b""[..]).to_vec()))
        .collect()
}

/// Every decoder of entries and completions, on one list of fields: a value or a reason.
fn decode_fields(fields: &[(Vec<u8>, Vec<u8>)]) {
    let keys = Keys::new("taskweave", "default");
    match TaskEntry::decode(fields, &keys) {
        Ok(entry) => {
            // What decodes is what the worker would run: keys under the namespace.
            assert!(entry.result.starts_with(&keys.result_prefix()), "{entry:?}");
            assert!(entry.reply.starts_with(&keys.reply_prefix()), "{entry:?}");
            assert!(entry.input.is_some() || !entry.deps.is_empty(), "{entry:?}");
        }
        Err(rejection) => {
            assert!(!rejection.reason.is_empty());
            // A rejection only ever tells a client under the namespace.
            if let Some(notify) = &rejection.notify {
                assert!(notify.reply.starts_with(&keys.reply_prefix()), "{notify:?}");
            }
        }
    }
    if let Err(reason) = Reply::decode(fields) {
        assert!(!reason.is_empty());
    }
    for (_, value) in fields {
        if let Some(status) = Status::parse(value) {
            assert_eq!(status.as_str().as_bytes(), &value[..]);
        }
    }
}

#[test]
fn any_entry_fields_decode_or_are_rejected_with_a_reason() {
    check!().with_type::<Entry>().with_iterations(ITERATIONS).for_each(|entry| {
        decode_fields(&entry.fields());
    });
}

/// A change to a well-formed entry.
#[derive(Debug, TypeGenerator)]
enum Edit {
    Drop(u8),
    Replace(u8, FieldValue),
    Rename(u8, Name),
    Insert(u8, Name, FieldValue),
}

/// A well-formed entry (as the client writes it) with a few changes: this reaches the checks
/// behind the first fields, which fields drawn at random rarely get past. The changes are
/// made to the fields one by one; `packed` then packs them as format version 2 does (`v`,
/// `rid` and the others in `e`), else they stay as version 1 wrote them.
#[derive(Debug, TypeGenerator)]
struct Edited {
    written: Written,
    #[generator(bolero::produce::<Vec<Edit>>().with().len(0usize..4))]
    edits: Vec<Edit>,
    packed: bool,
}

impl Edited {
    fn fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let fields = self.unpacked_fields();
        if !self.packed {
            return fields;
        }
        let rid = fields.iter().find(|(name, _)| name == b"rid").map(|(_, value)| value.clone());
        let packed = pack_fields(
            fields
                .iter()
                .filter(|(name, _)| name != b"v" && name != b"rid")
                .filter_map(|(name, value)| Some((std::str::from_utf8(name).ok()?, &value[..]))),
        );
        let mut outer = vec![(b"v".to_vec(), b"2".to_vec())];
        outer.extend(rid.map(|rid| (b"rid".to_vec(), rid)));
        outer.push((b"e".to_vec(), packed));
        outer
    }

    fn unpacked_fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = self
            .written
            .entry()
            .unpacked_fields()
            .into_iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value))
            .collect();
        for edit in &self.edits {
            let at = |index: &u8, len: usize| usize::from(*index) % len.max(1);
            match edit {
                Edit::Drop(index) if !fields.is_empty() => {
                    fields.remove(at(index, fields.len()));
                }
                Edit::Replace(index, value) if !fields.is_empty() => {
                    let at = at(index, fields.len());
                    fields[at].1 = value.bytes();
                }
                Edit::Rename(index, name) if !fields.is_empty() => {
                    let at = at(index, fields.len());
                    fields[at].0 = name.bytes();
                }
                Edit::Insert(index, name, value) => {
                    let at = at(index, fields.len() + 1);
                    fields.insert(at, (name.bytes(), value.bytes()));
                }
                _ => {}
            }
        }
        fields
    }
}

#[test]
fn edited_entries_decode_or_are_rejected_with_a_reason() {
    check!().with_type::<Edited>().with_iterations(ITERATIONS).for_each(|edited| {
        let fields = edited.fields();
        if edited.edits.is_empty() {
            let keys = Keys::new("taskweave", "default");
            let entry = TaskEntry { packed: edited.packed, ..edited.written.entry() };
            assert_eq!(TaskEntry::decode(&fields, &keys).ok(), Some(entry));
        }
        decode_fields(&fields);
    });
}

#[test]
fn any_bytes_as_entry_fields_decode_or_are_rejected_with_a_reason() {
    check!().with_iterations(ITERATIONS).for_each(|bytes: &[u8]| {
        decode_fields(&fields_of_bytes(bytes));
    });
}

// ---- server replies ----

/// A reply value of any shape RESP2 or RESP3 can carry (trees bounded by the harness's
/// depth limit).
#[derive(Debug, TypeGenerator)]
enum Shape {
    Nil,
    Int(i64),
    Bulk(Bytes),
    /// Text that looks like what the decoders expect: ids, counts, statuses.
    Plausible(#[generator(0..VALUES.len())] usize),
    Id(u64, u64),
    Simple(Bytes),
    Okay,
    Double(f64),
    Boolean(bool),
    Array(#[generator(bolero::produce::<Vec<Shape>>().with().len(0usize..6))] Vec<Shape>),
    Set(#[generator(bolero::produce::<Vec<Shape>>().with().len(0usize..4))] Vec<Shape>),
    Map(
        #[generator(bolero::produce::<Vec<(Shape, Shape)>>().with().len(0usize..4))]
        Vec<(Shape, Shape)>,
    ),
}

impl Shape {
    fn value(&self) -> Value {
        match self {
            Shape::Nil => Value::Nil,
            Shape::Int(number) => Value::Int(*number),
            Shape::Bulk(bytes) => Value::BulkString(bytes.0.clone()),
            Shape::Plausible(index) => Value::BulkString(VALUES[*index].as_bytes().to_vec()),
            Shape::Id(ms, seq) => Value::BulkString(format!("{ms}-{seq}").into_bytes()),
            Shape::Simple(bytes) => Value::SimpleString(String::from_utf8_lossy(&bytes.0).into()),
            Shape::Okay => Value::Okay,
            Shape::Double(number) => Value::Double(*number),
            Shape::Boolean(flag) => Value::Boolean(*flag),
            Shape::Array(items) => Value::Array(items.iter().map(Shape::value).collect()),
            Shape::Set(items) => Value::Set(items.iter().map(Shape::value).collect()),
            Shape::Map(pairs) => Value::Map(
                pairs.iter().map(|(field, value)| (field.value(), value.value())).collect(),
            ),
        }
    }
}

/// A part of a reply: mostly the right shape, one time in eight anything at all (so that
/// whole replies are often right and the decoders' success paths are fuzzed too).
#[derive(Debug, TypeGenerator)]
struct Part<T> {
    right: T,
    wrong: Shape,
    #[generator(0u8..8)]
    odds: u8,
}

impl<T> Part<T> {
    /// The right part made into a value by `value`, or the wrong one.
    fn value(&self, value: impl FnOnce(&T) -> Value) -> Value {
        if self.odds == 0 { self.wrong.value() } else { value(&self.right) }
    }
}

/// A stream entry as the server sends it: `[id, [field, value, ...]]`.
#[derive(Debug, TypeGenerator)]
struct EntryShape {
    id: Part<(u64, u64)>,
    fields: Part<Entry>,
}

/// One element of `claim.lua`'s reply: `{id, deliveries, fields or false}`.
#[derive(Debug, TypeGenerator)]
struct ClaimedShape {
    id: Part<(u64, u64)>,
    deliveries: Part<i64>,
    fields: Part<Option<Entry>>,
}

/// A reply of the right overall shape with wrong parts anywhere.
#[derive(Debug, TypeGenerator)]
enum ReplyShape {
    /// `XREAD`/`XREADGROUP`: `[[stream, [entry, ...]], ...]` (RESP2) or a map (RESP3).
    Read {
        map: bool,
        #[generator(bolero::produce::<Vec<Stream>>().with().len(0usize..3))]
        streams: Vec<Stream>,
    },
    /// `claim.lua`: `{next cursor, {claimed, ...}}`.
    Claim { cursor: Part<(u64, u64)>, claimed: Part<Claimed> },
    /// `MGET`: a value or nil per key.
    Values(
        #[generator(bolero::produce::<Vec<Part<Option<Bytes>>>>().with().len(0usize..6))]
        Vec<Part<Option<Bytes>>>,
    ),
}

/// One stream of a read reply: its name and entries.
#[derive(Debug, TypeGenerator)]
struct Stream {
    name: Part<Bytes>,
    entries: Part<Entries>,
}

/// The entries of one stream.
#[derive(Debug, TypeGenerator)]
struct Entries(
    #[generator(bolero::produce::<Vec<EntryShape>>().with().len(0usize..4))] Vec<EntryShape>,
);

/// The claimed entries of a claim reply.
#[derive(Debug, TypeGenerator)]
struct Claimed(
    #[generator(bolero::produce::<Vec<ClaimedShape>>().with().len(0usize..4))] Vec<ClaimedShape>,
);

fn id_value(id: &Part<(u64, u64)>) -> Value {
    id.value(|(ms, seq)| Value::BulkString(format!("{ms}-{seq}").into_bytes()))
}

fn fields_value(entry: &Entry) -> Value {
    Value::Array(
        entry
            .fields()
            .into_iter()
            .flat_map(|(name, value)| [Value::BulkString(name), Value::BulkString(value)])
            .collect(),
    )
}

impl ReplyShape {
    fn value(&self) -> Value {
        match self {
            ReplyShape::Read { map, streams } => {
                let streams = streams.iter().map(|stream| {
                    let name = stream.name.value(|bytes| Value::BulkString(bytes.0.clone()));
                    let entries = stream.entries.value(|entries| {
                        Value::Array(
                            entries
                                .0
                                .iter()
                                .map(|entry| {
                                    let fields = entry.fields.value(fields_value);
                                    Value::Array(vec![id_value(&entry.id), fields])
                                })
                                .collect(),
                        )
                    });
                    (name, entries)
                });
                if *map {
                    Value::Map(streams.collect())
                } else {
                    Value::Array(
                        streams.map(|(name, entries)| Value::Array(vec![name, entries])).collect(),
                    )
                }
            }
            ReplyShape::Claim { cursor, claimed } => {
                let claimed = claimed.value(|claimed| {
                    Value::Array(
                        claimed
                            .0
                            .iter()
                            .map(|entry| {
                                let deliveries = entry.deliveries.value(|count| Value::Int(*count));
                                // Lua's false comes back as nil.
                                let fields = entry.fields.value(|fields| {
                                    fields.as_ref().map_or(Value::Nil, fields_value)
                                });
                                Value::Array(vec![id_value(&entry.id), deliveries, fields])
                            })
                            .collect(),
                    )
                });
                Value::Array(vec![id_value(cursor), claimed])
            }
            ReplyShape::Values(values) => Value::Array(
                values
                    .iter()
                    .map(|value| {
                        value.value(|value| {
                            value
                                .as_ref()
                                .map_or(Value::Nil, |bytes| Value::BulkString(bytes.0.clone()))
                        })
                    })
                    .collect(),
            ),
        }
    }
}

/// Every decoder of server replies, on one value: a value or a typed error with a message.
fn decode_reply(value: &Value) {
    if let Some(entries) = read_reply(value) {
        for entry in &entries {
            decode_fields(&entry.fields);
        }
    }
    match claim_reply(value) {
        Ok((_, claimed)) => {
            for entry in &claimed {
                decode_fields(&entry.fields);
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    if let Err(error) = begin_reply(value) {
        assert!(error.to_string().contains("begin"), "{error}");
    }
    if let Value::Array(items) = value {
        // `begin` decodes one reply per pipelined script call.
        for item in items {
            if let Err(error) = begin_reply(item) {
                assert!(error.to_string().contains("begin"), "{error}");
            }
        }
    }
    let _ = ownership_of(value);
    if let Err(error) = count_reply("touch", value) {
        assert!(error.to_string().contains("touch"), "{error}");
    }
    if let Err(error) = values_reply(value) {
        assert!(error.to_string().contains("MGET"), "{error}");
    }
}

#[test]
fn any_reply_value_decodes_or_fails_with_a_typed_error() {
    check!()
        .with_type::<Shape>()
        .with_max_depth(5)
        .with_iterations(ITERATIONS)
        .for_each(|shape| decode_reply(&shape.value()));
}

#[test]
fn replies_of_the_right_shape_with_wrong_parts_decode_or_fail_with_a_typed_error() {
    check!()
        .with_type::<ReplyShape>()
        .with_max_depth(6)
        .with_iterations(ITERATIONS)
        .for_each(|shape| decode_reply(&shape.value()));
}

#[test]
fn any_bytes_parsed_as_resp_decode_or_fail_with_a_typed_error() {
    check!().with_iterations(ITERATIONS).for_each(|bytes: &[u8]| {
        if let Ok(value) = redis::parse_redis_value(bytes) {
            decode_reply(&value);
        }
    });
}

/// A well-formed claim reply decodes to exactly what it holds.
#[test]
fn a_well_formed_claim_reply_decodes_to_its_entries() {
    check!()
        .with_type::<(u64, u64, Vec<(u64, u32, Option<Entry>)>)>()
        .with_max_depth(4)
        .with_iterations(ITERATIONS)
        .for_each(|(cursor_ms, cursor_seq, claimed)| {
            let value = Value::Array(vec![
                Value::BulkString(format!("{cursor_ms}-{cursor_seq}").into_bytes()),
                Value::Array(
                    claimed
                        .iter()
                        .map(|(ms, deliveries, fields)| {
                            Value::Array(vec![
                                Value::BulkString(format!("{ms}-0").into_bytes()),
                                Value::Int(i64::from(*deliveries)),
                                fields.as_ref().map_or(Value::Nil, fields_value),
                            ])
                        })
                        .collect(),
                ),
            ]);
            let (cursor, entries) = claim_reply(&value).expect("a well-formed reply decodes");
            assert_eq!(cursor, format!("{cursor_ms}-{cursor_seq}"));
            assert_eq!(entries.len(), claimed.len());
            for (entry, (ms, deliveries, fields)) in entries.iter().zip(claimed) {
                assert_eq!(entry.id, format!("{ms}-0"));
                assert_eq!(entry.deliveries, *deliveries);
                assert_eq!(entry.fields, fields.as_ref().map(Entry::fields).unwrap_or_default());
            }
        });
}

// ---- result payloads ----

/// A task whose input is composed from two dependencies' outputs.
struct Pair;

impl Task for Pair {
    const NAME: &'static str = "pair";
    type Input = (i64, String);
    type Output = i64;
    type Error = std::convert::Infallible;
    fn run((number, _): (i64, String)) -> Result<i64, Self::Error> {
        Ok(number)
    }
}

/// A task with one dependency.
struct Single;

impl Task for Single {
    const NAME: &'static str = "single";
    type Input = Vec<u8>;
    type Output = Vec<u8>;
    type Error = std::convert::Infallible;
    fn run(input: Vec<u8>) -> Result<Vec<u8>, Self::Error> {
        Ok(input)
    }
}

#[test]
fn any_stored_outputs_compose_an_input_or_say_why_not() {
    check!().with_type::<Vec<FieldValue>>().with_iterations(ITERATIONS).for_each(|outputs| {
        let outputs: Vec<Vec<u8>> = outputs.iter().map(FieldValue::bytes).collect();
        if let Err(reason) = dependency_input::<Pair>(&outputs) {
            assert!(reason.contains("pair"), "{reason}");
        }
        if let Err(reason) = dependency_input::<Single>(&outputs) {
            assert!(reason.contains("single"), "{reason}");
        }
    });
}

// ---- round trip ----

/// An entry as the client writes it.
#[derive(Debug, TypeGenerator)]
struct Written {
    task: Bytes,
    key: Bytes,
    task_number: u32,
    input: Option<Bytes>,
    #[generator(1u32..10)]
    max_deliveries: u32,
    #[generator(1u64..10_000_000)]
    ttl_ms: u64,
    /// Written packed (format version 2) or as an older client did.
    packed: bool,
}

impl Written {
    /// The entry the client writes for this.
    fn entry(&self) -> TaskEntry {
        let keys = Keys::new("taskweave", "default");
        let text = |bytes: &Bytes| String::from_utf8_lossy(&bytes.0).into_owned();
        let input = self.input.as_ref().map(|input| input.0.clone());
        TaskEntry {
            task: text(&self.task),
            key: text(&self.key),
            rid: format!("c1:{}:1", self.task_number),
            result: keys.result("c1", u64::from(self.task_number)),
            reply: keys.reply("c1"),
            deps: if input.is_some() { Vec::new() } else { vec![keys.result("c1", 7)] },
            input,
            max_deliveries: self.max_deliveries,
            ttl_ms: self.ttl_ms,
            resources: Vec::new(),
            inline_max: self.task_number.is_multiple_of(2).then_some(256),
            packed: self.packed,
        }
    }
}

fn fields_of_entry(entry: &TaskEntry) -> Vec<(Vec<u8>, Vec<u8>)> {
    entry.fields().into_iter().map(|(name, value)| (name.as_bytes().to_vec(), value)).collect()
}

#[test]
fn an_entry_the_client_writes_decodes_back_to_itself() {
    check!().with_type::<Written>().with_iterations(ITERATIONS).for_each(|written| {
        let keys = Keys::new("taskweave", "default");
        let entry = written.entry();
        assert_eq!(TaskEntry::decode(&fields_of_entry(&entry), &keys).ok(), Some(entry));
    });
}
