//! [`Dependencies`]: what a task can be made to wait for, and how it receives their values.

use std::sync::Arc;

use super::TaskFuture;
use super::core::Value;
use crate::job::Inputs;

/// The futures a task depends on, and the shape in which it receives their values.
///
/// Implemented for `&TaskFuture<T>` (the task receives a `T`), tuples of up to six
/// dependencies (it receives a tuple), and slices or vectors of futures (it receives a
/// `Vec<T>`). Tuples nest: `(&a, &list)` gives `(A, Vec<B>)`.
///
/// This trait is sealed; its methods are internal.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::new()?;
/// let a = client.submit(|x: i64| x + 1, 1);
/// let b = client.submit(|x: i64| x * 10, 2);
/// let total = client.after((&a, &b)).submit(|(a, b): (i64, i64)| a + b);
/// assert_eq!(total.result()?, 22);
/// let parts = vec![a.clone(), b.clone()];
/// let sum = client.after(&parts).submit(|values: Vec<i64>| values.iter().sum::<i64>());
/// assert_eq!(sum.result()?, 22);
/// # Ok(()) }
/// ```
pub trait Dependencies: sealed::Sealed {
    /// What the dependent task receives.
    type Values: Send + 'static;

    /// Appends the jobs to wait for, in argument order, and records the shape of variable
    /// parts (slice lengths).
    #[doc(hidden)]
    fn collect(&self, list: &mut DependencyList);

    /// How many jobs [`collect`](Dependencies::collect) appends (so that the list is
    /// allocated once, at its size).
    #[doc(hidden)]
    fn count(&self) -> usize;

    /// Rebuilds the values from the dependencies' values, in the order `collect` gave them.
    #[doc(hidden)]
    fn read(reader: &mut DependencyReader<'_>) -> Option<Self::Values>;
}

mod sealed {
    pub trait Sealed {}
}

/// The jobs a dependent waits for, and the lengths of its variable-length parts.
#[doc(hidden)]
#[derive(Default)]
pub struct DependencyList {
    /// One or two without an allocation: the new job keeps them inline.
    pub(crate) jobs: Inputs,
    pub(crate) lengths: Vec<usize>,
    /// The address of the first job's client core, and the index of the first job of
    /// another core than that one: a dependent refuses a future of another client's core
    /// (its task ids mean nothing to this core). Two fields rather than a list of every
    /// job's core: no allocation per dependent task.
    first_core: Option<usize>,
    other_core_at: Option<usize>,
}

/// Reads the values of a dependent's inputs back into their shape.
#[doc(hidden)]
pub struct DependencyReader<'a> {
    values: std::slice::Iter<'a, Value>,
    lengths: std::slice::Iter<'a, usize>,
}

impl<'a> DependencyReader<'a> {
    pub(crate) fn new(values: &'a [Value], lengths: &'a [usize]) -> DependencyReader<'a> {
        DependencyReader { values: values.iter(), lengths: lengths.iter() }
    }

    fn next_value<T: Clone + 'static>(&mut self) -> Option<T> {
        self.values.next()?.downcast_ref::<T>().cloned()
    }

    fn next_length(&mut self) -> Option<usize> {
        self.lengths.next().copied()
    }
}

impl<T> sealed::Sealed for &TaskFuture<T> {}
impl<T: Clone + Send + Sync + 'static> Dependencies for &TaskFuture<T> {
    type Values = T;

    fn collect(&self, list: &mut DependencyList) {
        list.push(self);
    }

    fn count(&self) -> usize {
        1
    }

    fn read(reader: &mut DependencyReader<'_>) -> Option<T> {
        reader.next_value()
    }
}

impl<T> sealed::Sealed for TaskFuture<T> {}
impl<T: Clone + Send + Sync + 'static> Dependencies for TaskFuture<T> {
    type Values = T;

    fn collect(&self, list: &mut DependencyList) {
        list.push(self);
    }

    fn count(&self) -> usize {
        1
    }

    fn read(reader: &mut DependencyReader<'_>) -> Option<T> {
        reader.next_value()
    }
}

fn collect_slice<T>(futures: &[TaskFuture<T>], list: &mut DependencyList) {
    list.lengths.push(futures.len());
    futures.iter().for_each(|future| list.push(future));
}

impl DependencyList {
    /// An empty list with room for `jobs` jobs.
    pub(crate) fn with_capacity(jobs: usize) -> DependencyList {
        DependencyList { jobs: Inputs::with_capacity(jobs), ..DependencyList::default() }
    }

    fn push<T>(&mut self, future: &TaskFuture<T>) {
        let core = Arc::as_ptr(&future.handle.core) as usize;
        match self.first_core {
            None => self.first_core = Some(core),
            Some(first) if first != core && self.other_core_at.is_none() => {
                self.other_core_at = Some(self.jobs.len());
            }
            Some(_) => {}
        }
        self.jobs.push(Arc::clone(&future.handle.job));
    }

    /// The index of the first job that belongs to another client core than the one at
    /// `core` (an address), if any.
    pub(crate) fn first_foreign(&self, core: usize) -> Option<usize> {
        match self.first_core {
            Some(first) if first != core => Some(0),
            _ => self.other_core_at,
        }
    }
}

fn read_slice<T: Clone + 'static>(reader: &mut DependencyReader<'_>) -> Option<Vec<T>> {
    let length = reader.next_length()?;
    (0..length).map(|_| reader.next_value()).collect()
}

impl<T> sealed::Sealed for &[TaskFuture<T>] {}
impl<T: Clone + Send + Sync + 'static> Dependencies for &[TaskFuture<T>] {
    type Values = Vec<T>;

    fn collect(&self, list: &mut DependencyList) {
        collect_slice(self, list);
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn read(reader: &mut DependencyReader<'_>) -> Option<Vec<T>> {
        read_slice(reader)
    }
}

impl<T> sealed::Sealed for &Vec<TaskFuture<T>> {}
impl<T: Clone + Send + Sync + 'static> Dependencies for &Vec<TaskFuture<T>> {
    type Values = Vec<T>;

    fn collect(&self, list: &mut DependencyList) {
        collect_slice(self, list);
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn read(reader: &mut DependencyReader<'_>) -> Option<Vec<T>> {
        read_slice(reader)
    }
}

impl<T> sealed::Sealed for Vec<TaskFuture<T>> {}
impl<T: Clone + Send + Sync + 'static> Dependencies for Vec<TaskFuture<T>> {
    type Values = Vec<T>;

    fn collect(&self, list: &mut DependencyList) {
        collect_slice(self, list);
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn read(reader: &mut DependencyReader<'_>) -> Option<Vec<T>> {
        read_slice(reader)
    }
}

macro_rules! tuple_dependencies {
    ($($name:ident),+) => {
        impl<$($name: Dependencies),+> sealed::Sealed for ($($name,)+) {}
        impl<$($name: Dependencies),+> Dependencies for ($($name,)+) {
            type Values = ($($name::Values,)+);

            #[allow(non_snake_case)]
            fn collect(&self, list: &mut DependencyList) {
                let ($($name,)+) = self;
                $($name.collect(list);)+
            }

            #[allow(non_snake_case)]
            fn count(&self) -> usize {
                let ($($name,)+) = self;
                0 $(+ $name.count())+
            }

            fn read(reader: &mut DependencyReader<'_>) -> Option<Self::Values> {
                Some(($($name::read(reader)?,)+))
            }
        }
    };
}

tuple_dependencies!(A);
tuple_dependencies!(A, B);
tuple_dependencies!(A, B, C);
tuple_dependencies!(A, B, C, D);
tuple_dependencies!(A, B, C, D, E);
tuple_dependencies!(A, B, C, D, E, F);
