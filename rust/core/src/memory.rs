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

/// Size and alignment of a transparent huge page on x86_64 and aarch64 Linux.
const HUGE_PAGE: usize = 2 << 20;

/// A zeroed float buffer on transparent huge pages where Linux grants them: the kernel's per-thread
/// scratch, which is read at random rows (n=10,000: a 640 KB panel read nine times per output), so
/// that its reads do not miss the first-level TLB. It only grows, and keeps its contents when it
/// does not.
pub struct HugeBuffer {
    ptr: std::ptr::NonNull<f32>,
    floats: usize,
}

// SAFETY: the buffer owns its allocation outright (like a `Vec<f32>`), so moving it to another
// thread or sharing `&HugeBuffer` (which only reads the pointer) is sound.
unsafe impl Send for HugeBuffer {}
// SAFETY: as for `Send`.
unsafe impl Sync for HugeBuffer {}

impl HugeBuffer {
    pub const fn new() -> Self {
        Self {
            ptr: std::ptr::NonNull::dangling(),
            floats: 0,
        }
    }

    /// Floats the buffer holds.
    pub fn len(&self) -> usize {
        self.floats
    }

    pub fn is_empty(&self) -> bool {
        self.floats == 0
    }

    pub fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr.as_ptr()
    }

    fn layout(floats: usize) -> std::alloc::Layout {
        let bytes = (4 * floats).div_ceil(HUGE_PAGE) * HUGE_PAGE;
        std::alloc::Layout::from_size_align(bytes, HUGE_PAGE)
            .expect("a scratch buffer is far below isize::MAX bytes")
    }

    /// Grow to at least `floats` zeros (previous contents are dropped when it grows).
    pub fn reserve_zeroed(&mut self, floats: usize) {
        if floats <= self.floats {
            return;
        }
        let layout = Self::layout(floats);
        // SAFETY: the layout has a non-zero size (floats > self.floats >= 0).
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw as *mut f32) else {
            std::alloc::handle_alloc_error(layout);
        };
        #[cfg(target_os = "linux")]
        // SAFETY: the range is exactly the allocation just made; the advice changes how Linux
        // backs it, never its contents, and a refusal (older kernels) leaves 4 KiB pages.
        unsafe {
            libc::madvise(raw as *mut libc::c_void, layout.size(), libc::MADV_HUGEPAGE);
        }
        // SAFETY: `raw` is valid for `layout.size()` bytes; zeros are valid floats. Zeroing after
        // the advice faults the pages in as huge ones.
        unsafe { std::ptr::write_bytes(raw, 0, layout.size()) };
        self.release();
        self.ptr = ptr;
        self.floats = layout.size() / 4;
    }

    fn release(&mut self) {
        if self.floats > 0 {
            // SAFETY: allocated in `reserve_zeroed` with the layout of `self.floats` floats (a
            // whole number of huge pages, so `layout` recomputes the same size).
            unsafe { std::alloc::dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.floats)) };
            self.ptr = std::ptr::NonNull::dangling();
            self.floats = 0;
        }
    }
}

impl Default for HugeBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HugeBuffer {
    fn drop(&mut self) {
        self.release();
    }
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

    #[test]
    fn huge_buffers_grow_zeroed_in_whole_huge_pages() {
        let mut buf = HugeBuffer::new();
        assert!(buf.is_empty());
        buf.reserve_zeroed(10);
        assert_eq!(buf.len(), HUGE_PAGE / 4);
        assert_eq!(buf.as_mut_ptr() as usize % HUGE_PAGE, 0);
        // SAFETY: the buffer holds `len` floats.
        let all = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr(), buf.len()) };
        assert!(all.iter().all(|&v| v == 0.0));
        all[5] = 1.0;
        buf.reserve_zeroed(HUGE_PAGE / 4);
        // SAFETY: as above; not grown, so the write is still there.
        assert_eq!(unsafe { *buf.as_mut_ptr().add(5) }, 1.0);
        buf.reserve_zeroed(HUGE_PAGE / 4 + 1);
        assert_eq!(buf.len(), HUGE_PAGE / 2);
        // SAFETY: as above.
        let all = unsafe { std::slice::from_raw_parts(buf.as_mut_ptr(), buf.len()) };
        assert!(all.iter().all(|&v| v == 0.0));
    }
}
