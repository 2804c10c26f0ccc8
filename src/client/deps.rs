//! [`Dependencies`]: what a task can be made to wait for, and how it receives their values.

use std::sync::Arc;

use super::TaskFuture;
use super::core::{Job, Value};

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
    pub(crate) jobs: Vec<Arc<Job>>,
    pub(crate) lengths: Vec<usize>,
    /// The address of each job's client core, in `jobs`' order: a dependent refuses a
    /// future of another client's core (its task ids mean nothing to this core).
    pub(crate) cores: Vec<usize>,
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

    fn read(reader: &mut DependencyReader<'_>) -> Option<T> {
        reader.next_value()
    }
}

fn collect_slice<T>(futures: &[TaskFuture<T>], list: &mut DependencyList) {
    list.lengths.push(futures.len());
    futures.iter().for_each(|future| list.push(future));
}

impl DependencyList {
    fn push<T>(&mut self, future: &TaskFuture<T>) {
        self.jobs.push(Arc::clone(&future.handle.job));
        self.cores.push(Arc::as_ptr(&future.handle.core) as usize);
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
