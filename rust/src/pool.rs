//! The one process-wide thread pool for batch work (file hashing, signature batches).
//!
//! Built on first use with one thread per core; [`set_threads`] replaces it for later batches
//! (batches already running keep the pool they started on).

use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

fn build(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ferryman-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| Error::InvalidArgument(format!("cannot start thread pool: {e}")))
}

/// The shared pool, built on first use.
pub fn get() -> Result<Arc<rayon::ThreadPool>> {
    if let Some(pool) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return Ok(pool.clone());
    }
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        *slot = Some(build(cores)?);
    }
    Ok(slot.as_ref().expect("pool was just built").clone())
}

/// Replaces the shared pool with one of `threads` threads (1..=1024).
pub fn set_threads(threads: usize) -> Result<()> {
    if !(1..=1024).contains(&threads) {
        return Err(Error::InvalidArgument(format!(
            "threads must be in 1..=1024, got {threads}"
        )));
    }
    let pool = build(threads)?;
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Some(pool);
    Ok(())
}

/// How many threads the shared pool has.
pub fn threads() -> Result<usize> {
    Ok(get()?.current_num_threads())
}

/// Maps `f` over `items` on the shared pool, results in input order.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Result<Vec<R>> {
    use rayon::prelude::*;
    let pool = get()?;
    Ok(pool.install(|| items.par_iter().map(f).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_order_and_resizes() {
        let items: Vec<u64> = (0..1000).collect();
        let out = map(&items, |x| x * 2).unwrap();
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        set_threads(3).unwrap();
        assert_eq!(threads().unwrap(), 3);
        assert!(set_threads(0).is_err());
        assert_eq!(threads().unwrap(), 3);
    }
}
