//! Memory the kernel's buffers need: whether they fit before anything is allocated, and faulting
//! fresh buffers in on the kernel's pool so that the first round does not pay for it.

use rayon::prelude::*;

use crate::bail;
use crate::error::Result;
use crate::pool::pool;

/// Bytes the operating system can still hand out without swapping (Linux `MemAvailable`);
/// `None` where that is not known.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An error naming `what` when `bytes` exceed the memory available now.
pub fn check_fits(bytes: u64, what: &str) -> Result<()> {
    if let Some(available) = available_bytes() {
        if bytes > available {
            bail!(
                "{what} needs {:.1} GiB but this machine has {:.1} GiB available",
                bytes as f64 / (1u64 << 30) as f64,
                available as f64 / (1u64 << 30) as f64
            );
        }
    }
    Ok(())
}

/// Touch every page of `buf` (one write per 4 KiB) on the kernel's pool, so that its page faults
/// (and the zeroing of huge pages) happen here, spread over the threads, instead of inside the
/// first aggregate. Values written are zeros; the buffer counts as uninitialised either way.
pub fn prefault(buf: &mut [f32]) -> Result<()> {
    const PAGE_FLOATS: usize = 1024;
    const CHUNK: usize = 512 * PAGE_FLOATS;
    pool()?.install(|| {
        buf.par_chunks_mut(CHUNK).for_each(|chunk| {
            for v in chunk.iter_mut().step_by(PAGE_FLOATS) {
                *v = 0.0;
            }
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefault_writes_one_zero_per_page_and_too_much_is_an_error() {
        let mut buf = vec![1.0f32; 5000];
        prefault(&mut buf).unwrap();
        assert_eq!((buf[0], buf[1024], buf[1]), (0.0, 0.0, 1.0));
        if available_bytes().is_some() {
            let message = check_fits(u64::MAX, "a buffer").unwrap_err().message;
            assert!(message.starts_with("a buffer needs"), "{message}");
        }
        assert!(check_fits(1, "a byte").is_ok());
    }
}
