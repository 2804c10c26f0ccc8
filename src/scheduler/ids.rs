//! [`IdList`]: a record's list of task ids (its dependencies, its dependents) in 16 bytes,
//! with no allocation for none or one, one for two.

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
    /// Two ids or more, boxed: inline, a `Vec` would make every list 32 bytes.
    Many(Box<Many>),
}

/// Two ids or more: two in the box itself (one allocation for a task of two inputs, such as
/// a tree's), more in a `Vec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Many {
    /// Exactly two ids.
    Two([TaskId; 2]),
    /// Three ids or more.
    More(Vec<TaskId>),
}

impl IdList {
    /// The list holding `ids`, in their order. A list of two or fewer leaves `ids`'s
    /// buffer in `ids` (emptied), for the caller to reuse; a longer one takes it.
    pub(crate) fn take_from(ids: &mut Vec<TaskId>) -> IdList {
        let list = match ids.as_slice() {
            [] => IdList::Empty,
            [id] => IdList::One(*id),
            [first, second] => IdList::Many(Box::new(Many::Two([*first, *second]))),
            _ => return IdList::Many(Box::new(Many::More(std::mem::take(ids)))),
        };
        ids.clear();
        list
    }

    /// Adds `id` at the end.
    pub(crate) fn push(&mut self, id: TaskId) {
        match self {
            IdList::Empty => *self = IdList::One(id),
            IdList::One(first) => *self = IdList::Many(Box::new(Many::Two([*first, id]))),
            IdList::Many(many) => match &mut **many {
                Many::Two([first, second]) => **many = Many::More(vec![*first, *second, id]),
                Many::More(ids) => ids.push(id),
            },
        }
    }

    /// The ids, in the order they were added.
    pub(crate) fn as_slice(&self) -> &[TaskId] {
        match self {
            IdList::Empty => &[],
            IdList::One(id) => std::slice::from_ref(id),
            IdList::Many(many) => match &**many {
                Many::Two(ids) => ids,
                Many::More(ids) => ids,
            },
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
        assert_eq!(IdList::take_from(&mut ids).as_slice(), [TaskId(1), TaskId(2)]);
        assert_eq!(ids.capacity(), 8, "two ids fit in the list's box");
        ids.extend([TaskId(1), TaskId(2), TaskId(3)]);
        let list = IdList::take_from(&mut ids);
        assert_eq!(list.as_slice(), [TaskId(1), TaskId(2), TaskId(3)]);
        assert_eq!(ids.capacity(), 0, "a longer list took the buffer");
    }
}
