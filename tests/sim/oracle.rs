//! What the oracles of both transports decide the same way: whether an error a future
//! resolved to is explained by the workload (the task's own doing, a dependency's, or a
//! cancel), given how the tasks depend on each other.

use std::collections::BTreeSet;

use taskweave::TaskError;

/// The tasks of one run, as an oracle sees them. A workload implements the three facts;
/// the classification built on them is shared.
pub(crate) trait TaskGraph {
    /// The tasks that task `index` was submitted after (its inputs).
    fn parents(&self, index: usize) -> &[usize];

    /// Whether something that is not a dependency may have cancelled task `index` (its own
    /// `cancel()`, a close, a cancel of a shared key, ...).
    fn cancelled_directly(&self, index: usize) -> bool;

    /// Whether task `index` may fail by itself with `error`, not through a dependency.
    fn may_fail_with(&self, index: usize, error: &TaskError) -> bool;

    /// Every task `index` depends on, transitively.
    fn ancestors(&self, index: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        let mut stack = self.parents(index).to_vec();
        while let Some(parent) = stack.pop() {
            if found.insert(parent) {
                stack.extend(self.parents(parent).iter().copied());
            }
        }
        found
    }

    /// Whether task `index` may end cancelled: it or one of its ancestors was.
    fn may_be_cancelled(&self, index: usize) -> bool {
        self.cancelled_directly(index)
            || self.ancestors(index).into_iter().any(|ancestor| self.cancelled_directly(ancestor))
    }

    /// Whether a (non-cancel) `error` of task `index` is explained: raised by the task itself,
    /// or the root error of an ancestor that may raise it.
    fn explains_error(&self, index: usize, error: &TaskError) -> bool {
        if self.may_fail_with(index, error) {
            return true;
        }
        match error {
            TaskError::DependencyFailed { root, .. } => {
                self.ancestors(index).into_iter().any(|ancestor| self.may_fail_with(ancestor, root))
            }
            _ => false,
        }
    }
}
