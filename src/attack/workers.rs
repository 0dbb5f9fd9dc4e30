//! An attack's threads. On the CPU an attack runs one batch per core,
//! each thread with its own single-threaded ONNX Runtime sessions: a
//! batch alternates between the network (one call for all its examples)
//! and the solvers' own work, and one batch spread over every core kept
//! them waiting on each other at every switch. Batches are independent
//! and results come back in batch order, so how many threads ran them
//! does not change them. A signal stops every batch in flight, and the
//! batches that finished are kept.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::Result;

use super::gradient::Gradients;
use crate::classifier::Classifier;
use crate::interrupt::Signal;
use crate::runtime::{Device, Runtime};

/// The sessions one attacking thread uses.
pub struct Worker {
    pub classifier: Classifier,
    pub gradients: Gradients,
    /// Threads the solvers of one batch share: 1 when every core runs a
    /// worker of its own.
    pub solver_threads: usize,
}

impl Worker {
    /// A worker for the model at `model` with its `xent` backward graph
    /// `backward`, with sessions of `threads` intra-op threads.
    pub fn load(model: &Path, backward: &Path, device: Device, threads: usize) -> Result<Worker> {
        Ok(Worker {
            classifier: Classifier::load_with_threads(model, device, threads)?,
            gradients: Gradients::load(model, backward, device, threads)?,
            solver_threads: threads,
        })
    }

    /// Where the sessions run (`Auto` resolved).
    pub fn device(&self) -> Device {
        self.classifier.model().device()
    }
}

/// The workers of an attack on `device`: on the CPU one per thread the
/// runtime may use (`ADVX_THREADS`, else every core), each single-threaded;
/// on a GPU one, whose solvers share the cores.
pub fn workers(model: &Path, backward: &Path, device: Device) -> Result<Vec<Worker>> {
    let threads = Runtime::get()?.threads();
    let mut first = Worker::load(model, backward, device, 1)?;
    let device = first.device();
    if device != Device::Cpu || threads == 1 {
        first.solver_threads = threads;
        return Ok(vec![first]);
    }
    let mut workers = vec![first];
    for _ in 1..threads {
        workers.push(Worker::load(model, backward, device, 1)?);
    }
    Ok(workers)
}

/// What [`run_all`] finished: each job's result by index, `None` for the
/// jobs a signal stopped or kept from starting.
pub struct Ran<T> {
    pub results: Vec<Option<T>>,
    /// The signal that stopped the work; `None` when every job finished.
    pub interrupted: Option<Signal>,
}

/// `job(worker, i)` for every i in 0..count, each worker on a thread of its
/// own taking the next i as it frees up; `done` sees every result on the
/// calling thread as it arrives (progress, Ctrl-C). The first error, from
/// a job or from `done`, stops the handing out of work and, once the
/// running jobs end, is returned, unless it is an
/// [`Interrupted`](crate::interrupt::Interrupted): then the jobs that
/// finished are returned with the signal. A job that finished is kept
/// even when `done` then reports the interrupt.
pub fn run_all<T: Send>(
    workers: &mut [Worker],
    count: usize,
    job: impl Fn(&mut Worker, usize) -> Result<T> + Sync,
    mut done: impl FnMut(&T) -> Result<()>,
) -> Result<Ran<T>> {
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    let mut first_error = None;
    if let [worker] = workers {
        for (i, slot) in results.iter_mut().enumerate() {
            let result = match job(worker, i) {
                Ok(result) => result,
                Err(error) => {
                    first_error = Some(error);
                    break;
                }
            };
            let heard = done(&result);
            *slot = Some(result);
            if let Err(error) = heard {
                first_error = Some(error);
                break;
            }
        }
    } else {
        first_error = side_by_side(workers, count, &job, &mut done, &mut results);
    }
    match first_error {
        None => Ok(Ran { results, interrupted: None }),
        Some(error) => match crate::interrupt::signal_of(&error) {
            Some(signal) => Ok(Ran { results, interrupted: Some(signal) }),
            None => Err(error),
        },
    }
}

/// [`run_all`] with a thread per worker; the first error, if any.
fn side_by_side<T: Send>(
    workers: &mut [Worker],
    count: usize,
    job: &(impl Fn(&mut Worker, usize) -> Result<T> + Sync),
    done: &mut impl FnMut(&T) -> Result<()>,
    results: &mut [Option<T>],
) -> Option<anyhow::Error> {
    let (next, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for worker in workers.iter_mut() {
            let (sender, next, stop) = (sender.clone(), &next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let result = job(worker, i);
                    let failed = result.is_err();
                    if sender.send((i, result)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut first_error = None;
        for (i, result) in receiver {
            let heard = match result {
                Ok(result) => {
                    let heard = if first_error.is_none() { done(&result) } else { Ok(()) };
                    results[i] = Some(result);
                    heard
                }
                Err(error) => Err(error),
            };
            if let Err(error) = heard {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(error);
            }
        }
        first_error
    })
}
