//! Fuzzing the decoders of what crosses Redis: whatever bytes a stream entry or a reply
//! holds, decoding returns a value or an error, never a panic; and what the client writes
//! decodes back to itself.

use proptest::prelude::*;

use super::protocol::{Keys, Reply, Status, TaskEntry};

/// Field names the decoders look for, mixed with arbitrary ones, so that the fuzzer reaches
/// past the first missing field.
fn field_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
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
        ])
        .prop_map(|name| name.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..8),
    ]
}

/// Values: plausible ones (numbers, JSON, key-shaped text) and arbitrary bytes.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
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
            "[1,2",
            "null",
            "taskweave:reply:c1",
            "taskweave:result:c1:1",
            "",
        ])
        .prop_map(|value| value.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..24),
    ]
}

fn fields() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    prop::collection::vec((field_name(), field_value()), 0..14)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_task_entry_of_any_fields_decodes_or_is_rejected(fields in fields()) {
        let keys = Keys::new("taskweave", "default");
        if let Err(rejection) = TaskEntry::decode(&fields, &keys) {
            prop_assert!(!rejection.reason.is_empty());
        }
    }

    #[test]
    fn a_reply_of_any_fields_decodes_or_says_why_not(fields in fields()) {
        if let Err(reason) = Reply::decode(&fields) {
            prop_assert!(!reason.is_empty());
        }
    }

    #[test]
    fn a_status_of_any_bytes_parses_only_to_a_known_name(text in prop::collection::vec(any::<u8>(), 0..12)) {
        if let Some(status) = Status::parse(&text) {
            prop_assert_eq!(status.as_str().as_bytes(), &text[..]);
        }
    }

    #[test]
    fn an_entry_the_client_writes_decodes_back_to_itself(
        task in "[a-z_]{1,12}",
        key in "[a-z0-9-]{1,20}",
        task_number in any::<u32>(),
        input in prop::option::of(prop::collection::vec(any::<u8>(), 0..32)),
        max_deliveries in 1u32..10,
        ttl_ms in 1u64..10_000_000,
    ) {
        let keys = Keys::new("taskweave", "default");
        let entry = TaskEntry {
            task,
            key,
            rid: format!("c1:{task_number}:1"),
            result: keys.result("c1", u64::from(task_number)),
            reply: keys.reply("c1"),
            deps: if input.is_some() { Vec::new() } else { vec![keys.result("c1", 7)] },
            input,
            max_deliveries,
            ttl_ms,
        };
        let fields: Vec<(Vec<u8>, Vec<u8>)> = entry
            .fields()
            .into_iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value))
            .collect();
        let decoded = TaskEntry::decode(&fields, &keys);
        prop_assert_eq!(decoded.ok(), Some(entry));
    }
}
