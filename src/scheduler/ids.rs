//! [`IdList`]: a record's list of task ids (its dependencies, its dependents) in 16 bytes,
//! with no allocation for none or one.

use crate::key::TaskId;

/// Task ids in the order they were added: none or one stored inline, more on the heap.
///
/// Most tasks read at most one other and are read by at most one (a chain, a map over a
/// future, a tree's leaves): for them the list costs no allocation, and every record is 8
/// bytes smaller than with a `Vec` (see `graph::Record`'s size test).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum IdList {
    /// No id.
    #[default]
    Empty,
    /// One id.
    One(TaskId),
    /// Two ids or more. Boxed: a `Vec` inline would make every list 32 bytes.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<TaskId>>),
}

impl IdList {
    /// The list holding `ids`, in their order. A list of one or none leaves `ids`'s buffer
    /// in `ids` (emptied), for the caller to reuse; a longer one takes it.
    pub(crate) fn take_from(ids: &mut Vec<TaskId>) -> IdList {
        match ids.as_slice() {
            [] => IdList::Empty,
            [id] => {
                let id = *id;
                ids.clear();
                IdList::One(id)
            }
            _ => IdList::Many(Box::new(std::mem::take(ids))),
        }
    }

    /// Adds `id` at the end.
    pub(crate) fn push(&mut self, id: TaskId) {
        match self {
            IdList::Empty => *self = IdList::One(id),
            IdList::One(first) => {
                let first = *first;
                *self = IdList::Many(Box::new(vec![first, id]));
            }
            IdList::Many(ids) => ids.push(id),
        }
    }

    /// The ids, in the order they were added.
    pub(crate) fn as_slice(&self) -> &[TaskId] {
        match self {
            IdList::Empty => &[],
            IdList::One(id) => std::slice::from_ref(id),
            IdList::Many(ids) => ids,
        }
    }

    /// Whether `id` is in the list.
    pub(crate) fn contains(&self, id: &TaskId) -> bool {
        self.as_slice().contains(id)
    }
}

impl<'a> IntoIterator for &'a IdList {
    type Item = &'a TaskId;
    type IntoIter = std::slice::Iter<'a, TaskId>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_pushed_in_order_in_16_bytes() {
        assert_eq!(size_of::<IdList>(), 16);
        let mut list = IdList::default();
        assert_eq!(list.as_slice(), []);
        for n in 1..=5 {
            list.push(TaskId(n));
            let expected: Vec<TaskId> = (1..=n).map(TaskId).collect();
            assert_eq!(list.as_slice(), expected);
        }
        assert!(list.contains(&TaskId(3)));
        assert!(!list.contains(&TaskId(6)));
    }

    #[test]
    fn a_short_list_leaves_the_buffer_for_reuse_and_a_long_one_takes_it() {
        let mut ids = Vec::with_capacity(8);
        ids.push(TaskId(7));
        assert_eq!(IdList::take_from(&mut ids), IdList::One(TaskId(7)));
        assert!(ids.is_empty());
        assert_eq!(ids.capacity(), 8, "the buffer stays for the next list");
        assert_eq!(IdList::take_from(&mut ids), IdList::Empty);
        ids.extend([TaskId(1), TaskId(2)]);
        let list = IdList::take_from(&mut ids);
        assert_eq!(list.as_slice(), [TaskId(1), TaskId(2)]);
        assert_eq!(ids.capacity(), 0, "a long list took the buffer");
    }
}
