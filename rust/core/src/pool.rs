//! The dedicated, named rayon pool (not rayon's global one), sized by `MOSAIC_NUM_THREADS`.
//! Rebuilt in a forked child, whose copy of the parent's worker threads does not exist.

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::bail;
use crate::error::Result;

pub const THREADS_ENV: &str = "MOSAIC_NUM_THREADS";

struct PoolSlot {
    pid: u32,
    pool: Arc<ThreadPool>,
}

static POOL: Mutex<Option<PoolSlot>> = Mutex::new(None);

/// Threads requested by the environment, or the machine's available parallelism when it is unset.
/// Anything but a positive integer is an error naming the value, never a silent fallback.
pub fn configured_threads() -> Result<usize> {
    let raw = match std::env::var_os(THREADS_ENV) {
        None => {
            return Ok(std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1))
        }
        Some(raw) => raw,
    };
    match raw.to_str().map(str::trim).map(str::parse::<usize>) {
        Some(Ok(n)) if n >= 1 => Ok(n),
        _ => bail!(
            "{THREADS_ENV}={:?} is not a positive integer; set it to the number of threads, \
             or unset it to use every core",
            raw.to_string_lossy()
        ),
    }
}

/// The kernel's pool, started on first use (and again in a forked child).
pub fn pool() -> Result<Arc<ThreadPool>> {
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = slot.as_ref() {
        if s.pid == pid {
            return Ok(s.pool.clone());
        }
    }
    let threads = configured_threads()?;
    let pool = match ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("mosaic-{i}"))
        .build()
    {
        Ok(p) => Arc::new(p),
        Err(e) => bail!("could not start {threads} worker threads: {e}"),
    };
    if let Some(old) = slot.take() {
        // The parent's pool has no threads in this child; dropping it would wait on them forever.
        std::mem::forget(old.pool);
    }
    *slot = Some(PoolSlot {
        pid,
        pool: pool.clone(),
    });
    Ok(pool)
}
