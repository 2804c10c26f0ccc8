//! [`TaskTable`]: the scheduler's records, stored by task id in chunks.
//!
//! Task ids are handed out in sequence, so the tasks alive at one time have ids close to each
//! other. A table of chunks of [`CHUNK`] consecutive ids, each chunk one allocation of records
//! side by side, beats a hash map of records on the three counts that matter per task: a look
//! up is a division and one small map probe (the map holds chunks, not tasks); growing never
//! moves a record (a hash map moves every record each time it doubles); and tasks submitted
//! together sit together in memory.
//!
//! **Invariant:** a chunk is in the map only while it holds a record or is the chunk of the
//! newest id inserted so far. So memory follows the live tasks: a task held for a long time
//! keeps its own chunk alive, never the ids between it and the newest ones.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::key::TaskId;

/// How many consecutive ids one chunk covers.
pub(crate) const CHUNK: u64 = 128;

/// Chunk numbers are small and dense: hashing them is a multiplication.
#[derive(Default)]
struct ChunkHasher(u64);

impl Hasher for ChunkHasher {
    fn finish(&self) -> u64 {
        // Spread the bits so that the map's low bits differ between neighbours.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Records of [`CHUNK`] consecutive ids, and how many of them are present.
struct Chunk<V> {
    slots: Box<[Option<V>]>,
    live: usize,
}

impl<V> Chunk<V> {
    fn empty() -> Chunk<V> {
        Chunk { slots: (0..CHUNK).map(|_| None).collect(), live: 0 }
    }
}

/// A map from [`TaskId`] to `V`, for ids handed out in sequence; see the module docs.
pub(crate) struct TaskTable<V> {
    chunks: HashMap<u64, Chunk<V>, BuildHasherDefault<ChunkHasher>>,
    /// The chunk of the newest id inserted: kept even while empty, since the next ids land in
    /// it.
    newest_chunk: u64,
    /// One emptied chunk kept for reuse, so that a steady stream of short tasks does not
    /// allocate a chunk every [`CHUNK`] tasks.
    spare: Option<Chunk<V>>,
    len: usize,
}

impl<V: std::fmt::Debug> std::fmt::Debug for TaskTable<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> Default for TaskTable<V> {
    fn default() -> TaskTable<V> {
        TaskTable { chunks: HashMap::default(), newest_chunk: 0, spare: None, len: 0 }
    }
}

fn place(id: TaskId) -> (u64, usize) {
    (id.0 / CHUNK, (id.0 % CHUNK) as usize)
}

impl<V> TaskTable<V> {
    /// How many records the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, id: &TaskId) -> Option<&V> {
        let (chunk, slot) = place(*id);
        self.chunks.get(&chunk)?.slots[slot].as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: &TaskId) -> Option<&mut V> {
        let (chunk, slot) = place(*id);
        self.chunks.get_mut(&chunk)?.slots[slot].as_mut()
    }

    /// Stores `value` under `id`; returns the value it replaces.
    pub(crate) fn insert(&mut self, id: TaskId, value: V) -> Option<V> {
        let (chunk_number, slot) = place(id);
        if chunk_number > self.newest_chunk || self.len == 0 {
            let previous = std::mem::replace(&mut self.newest_chunk, chunk_number);
            // The chunk new ids went to may be empty now that they go elsewhere.
            if previous != chunk_number {
                self.drop_if_empty(previous);
            }
        }
        let spare = &mut self.spare;
        let chunk = self
            .chunks
            .entry(chunk_number)
            .or_insert_with(|| spare.take().unwrap_or_else(Chunk::empty));
        let replaced = chunk.slots[slot].replace(value);
        if replaced.is_none() {
            chunk.live += 1;
            self.len += 1;
        }
        replaced
    }

    /// Takes the value stored under `id` out of the table.
    pub(crate) fn remove(&mut self, id: &TaskId) -> Option<V> {
        let (chunk_number, slot) = place(*id);
        let chunk = self.chunks.get_mut(&chunk_number)?;
        let removed = chunk.slots[slot].take()?;
        chunk.live -= 1;
        self.len -= 1;
        if chunk.live == 0 && chunk_number != self.newest_chunk {
            self.drop_if_empty(chunk_number);
        }
        Some(removed)
    }

    /// Takes the value stored under `id` out of the table if `remove` says so, in one look
    /// up: `remove` sees the value (and may change it when it keeps it).
    pub(crate) fn remove_if(
        &mut self,
        id: &TaskId,
        remove: impl FnOnce(&mut V) -> bool,
    ) -> Option<V> {
        let (chunk_number, slot) = place(*id);
        let chunk = self.chunks.get_mut(&chunk_number)?;
        let value = chunk.slots[slot].as_mut()?;
        if !remove(value) {
            return None;
        }
        let removed = chunk.slots[slot].take();
        chunk.live -= 1;
        self.len -= 1;
        if chunk.live == 0 && chunk_number != self.newest_chunk {
            self.drop_if_empty(chunk_number);
        }
        removed
    }

    /// Removes the chunk if it holds no record, keeping it as the spare if there is none.
    fn drop_if_empty(&mut self, chunk_number: u64) {
        if self.chunks.get(&chunk_number).is_some_and(|chunk| chunk.live == 0) {
            let chunk = self.chunks.remove(&chunk_number).expect("checked above");
            if self.spare.is_none() {
                self.spare = Some(chunk);
            }
        }
    }

    /// Every record with its id, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TaskId, &V)> {
        self.chunks.iter().flat_map(|(&chunk_number, chunk)| {
            chunk.slots.iter().enumerate().filter_map(move |(slot, value)| {
                value.as_ref().map(|value| (TaskId(chunk_number * CHUNK + slot as u64), value))
            })
        })
    }

    /// How many chunks are allocated (in the map and spare).
    #[cfg(test)]
    fn chunks_allocated(&self) -> usize {
        self.chunks.len() + usize::from(self.spare.is_some())
    }
}

impl<V> std::ops::Index<&TaskId> for TaskTable<V> {
    type Output = V;

    fn index(&self, id: &TaskId) -> &V {
        self.get(id).expect("no record for this task id")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_long_held_task_keeps_only_its_own_chunk() {
        let mut table = TaskTable::default();
        table.insert(TaskId(1), "held");
        for id in 2..100_000 {
            table.insert(TaskId(id), "short");
            assert_eq!(table.remove(&TaskId(id)), Some("short"));
        }
        assert_eq!(table.len(), 1);
        assert_eq!(table[&TaskId(1)], "held");
        // The held task's chunk, the newest ids' chunk, and one spare.
        assert!(table.chunks_allocated() <= 3, "{} chunks", table.chunks_allocated());
    }

    #[test]
    fn ids_arriving_out_of_order_and_far_apart_are_all_found() {
        let mut table = TaskTable::default();
        for id in [500, 3, 10_000_000, 129, 128, 127, 0] {
            assert_eq!(table.insert(TaskId(id), id), None);
        }
        for id in [500, 3, 10_000_000, 129, 128, 127, 0] {
            assert_eq!(table.get(&TaskId(id)), Some(&id));
        }
        assert_eq!(table.get(&TaskId(1)), None);
        let mut ids: Vec<u64> = table.iter().map(|(id, _)| id.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, [0, 3, 127, 128, 129, 500, 10_000_000]);
    }

    proptest! {
        /// The table behaves as a map, whatever the order of inserts and removals.
        #[test]
        fn behaves_like_a_map(operations in proptest::collection::vec((0u64..1_000, 0u8..3), 0..400)) {
            let mut table = TaskTable::default();
            let mut model = BTreeMap::new();
            for (step, (id, operation)) in operations.into_iter().enumerate() {
                match operation {
                    0 => prop_assert_eq!(table.insert(TaskId(id), step), model.insert(id, step)),
                    1 => prop_assert_eq!(table.remove(&TaskId(id)), model.remove(&id)),
                    _ => {
                        // Removes values that are even, keeps odd ones.
                        let expected = match model.get(&id) {
                            Some(value) if value % 2 == 0 => model.remove(&id),
                            _ => None,
                        };
                        prop_assert_eq!(table.remove_if(&TaskId(id), |value| *value % 2 == 0), expected);
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            let mut seen: Vec<(u64, usize)> = table.iter().map(|(id, value)| (id.0, *value)).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, model.into_iter().collect::<Vec<_>>());
            // Every chunk in the map holds a record, except the newest one.
            prop_assert!(table.chunks.iter().all(|(number, chunk)| chunk.live > 0 || *number == table.newest_chunk));
        }
    }
}
