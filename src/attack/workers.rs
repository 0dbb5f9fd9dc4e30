//! An attack's threads. On the CPU an attack runs one batch per core,
//! each thread with its own single-threaded ONNX Runtime sessions: a
//! batch alternates between the network (one call for all its examples)
//! and the solvers' own work, and one batch spread over every core kept
//! them waiting on each other at every switch. Batches are independent
//! and results come back in batch order, so how many threads ran them
//! does not change them.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::Result;

use super::gradient::Gradients;
use crate::classifier::Classifier;
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

/// `job(worker, i)` for every i in 0..count, each worker on a thread of its
/// own taking the next i as it frees up; `done` sees every result on the
/// calling thread as it arrives (progress, Ctrl-C). The first error, from
/// a job or from `done`, stops the handing out of work and is returned
/// once the running jobs end. Results come in index order.
pub fn run_all<T: Send>(
    workers: &mut [Worker],
    count: usize,
    job: impl Fn(&mut Worker, usize) -> Result<T> + Sync,
    mut done: impl FnMut(&T) -> Result<()>,
) -> Result<Vec<T>> {
    if let [worker] = workers {
        return (0..count).map(|i| job(worker, i).and_then(|result| done(&result).map(|_| result))).collect();
    }
    let (next, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for worker in workers.iter_mut() {
            let (sender, next, stop, job) = (sender.clone(), &next, &stop, &job);
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
            match result.and_then(|result| done(&result).map(|_| result)) {
                Ok(result) => results[i] = Some(result),
                Err(error) => {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    })?;
    Ok(results.into_iter().map(|result| result.expect("every index ran")).collect())
}
