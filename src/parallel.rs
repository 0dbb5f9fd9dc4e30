//! A batch's passes split over scoped threads: the attack's per-round work
//! (gathering the solvers' points, converting them for the network,
//! assembling the objectives' gradients, the solvers' own steps). On a GPU
//! one worker owns the whole batch, and every pass left on one thread
//! leaves the other cores idle while it runs.

use anyhow::Result;

/// Batches with fewer values in all than this stay on one thread: the
/// spawns would cost more than they save.
const PARALLEL_WORK: usize = 16 * 784;

/// Threads for work split over the cores: `ADVX_THREADS` (as ONNX
/// Runtime's sessions), else every core.
pub fn threads() -> usize {
    let cores = || std::thread::available_parallelism().map_or(1, |n| n.get());
    std::env::var("ADVX_THREADS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or_else(cores)
}

/// Rows per part when `rows` rows of `width` values go to at most
/// `threads` threads; every row in one part for a small batch.
pub fn rows_per_part(rows: usize, width: usize, threads: usize) -> usize {
    let threads = if rows * width < PARALLEL_WORK { 1 } else { threads.clamp(1, rows.max(1)) };
    rows.div_ceil(threads).max(1)
}

/// Runs `work` on every part: the first on the calling thread, each other
/// on a scoped thread of its own. Returns the first error once all are
/// done; a panic in a part is raised here.
pub fn try_for_each_part<P: Send>(
    parts: impl IntoIterator<Item = P>,
    work: impl Fn(P) -> Result<()> + Sync,
) -> Result<()> {
    let mut parts = parts.into_iter().peekable();
    let Some(first) = parts.next() else { return Ok(()) };
    if parts.peek().is_none() {
        return work(first);
    }
    std::thread::scope(|scope| {
        let work = &work;
        let others: Vec<_> = parts.map(|part| scope.spawn(move || work(part))).collect();
        let mine = work(first);
        others
            .into_iter()
            .map(|other| other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .fold(mine, Result::and)
    })
}

/// [`try_for_each_part`] for work that cannot fail.
pub fn for_each_part<P: Send>(parts: impl IntoIterator<Item = P>, work: impl Fn(P) + Sync) {
    let _ = try_for_each_part(parts, |part| {
        work(part);
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_batches_stay_whole_and_large_ones_split_evenly() {
        assert_eq!(rows_per_part(10, 784, 16), 10);
        assert_eq!(rows_per_part(1000, 784, 16), 63);
        assert_eq!(rows_per_part(3, 100_000, 16), 1);
        assert_eq!(rows_per_part(0, 784, 4), 1);
    }

    #[test]
    fn every_part_runs_once_and_the_first_error_comes_back() {
        let mut data = vec![0u32; 1000];
        for_each_part(data.chunks_mut(7), |part| part.iter_mut().for_each(|v| *v += 1));
        assert!(data.iter().all(|&v| v == 1));
        let failed = try_for_each_part(0..8, |i| if i == 5 { anyhow::bail!("part {i}") } else { Ok(()) });
        assert_eq!(failed.unwrap_err().to_string(), "part 5");
    }
}
