//! What every tile task shares (the buffers, the graphs, the instruction set), and the steps both
//! tile walks take: a receiver's averages over the segments of a span, and prefetching the next
//! tile.

use super::loops;
use crate::fragments::Segment;
use crate::graphs::Digraph;
use crate::simd;

/// Floats per 64-byte cache line.
pub(super) const LINE_FLOATS: usize = 16;

/// An output pointer, shared by the tasks of a parallel section.
#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
// SAFETY: the pointer is only dereferenced inside the kernel's parallel sections (tile tasks, staging
// copies), while the buffer it came from is borrowed for the whole section, and the tasks write
// disjoint column ranges or rows: sending it to another thread or sharing it creates no data race.
unsafe impl Send for SendPtr {}
// SAFETY: as for `Send`; the tasks only copy the pointer out of the shared reference.
unsafe impl Sync for SendPtr {}

/// What every tile task shares: the buffers and the graphs.
pub(super) struct Kernel<'a> {
    pub(super) x: &'a [f32],
    pub(super) out: *mut f32,
    pub(super) n: usize,
    pub(super) d: usize,
    pub(super) slots: usize,
    pub(super) graphs: &'a [Digraph],
    /// Which instantiation of the loops to run (detected once per call; wider ones on x86_64 only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) isa: u8,
    /// Whether column-run tiles take the packed path ([`super::PACKED_MIN_NODES`]).
    pub(super) packed: bool,
}

impl Kernel<'_> {
    /// The columns of the next tile whose rows are prefetched during strip `a..b` of `total`: the
    /// same share of it. With one memory stream per row the hardware prefetchers fall behind
    /// (n=64: 19 -> 17 ms), and gathers read out of order, which they do not follow at all.
    #[inline(always)]
    pub(super) fn prefetch_share(
        next: Option<(usize, usize)>,
        a: usize,
        b: usize,
        total: usize,
    ) -> Option<(usize, usize)> {
        next.map(|(start, end)| {
            let len = end - start;
            (start + a * len / total, start + b * len / total)
        })
    }

    /// Receiver `i`'s averages at tile positions `lo..hi`, one call per segment that meets them.
    /// Position `p` reads column `src_off + p` of the rows of `src` (`src_stride` apart) and is
    /// written to `dst.add(p)`; `seg_end` is where a segment's positions end (with or without the
    /// padding of gathered tiles).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) unsafe fn average_span<const STREAM: bool, const ISA: u8>(
        &self,
        segments: &[Segment],
        seg_end: impl Fn(&Segment) -> usize,
        i: usize,
        lo: usize,
        hi: usize,
        src: *const f32,
        src_stride: usize,
        src_off: usize,
        dst: *mut f32,
    ) {
        for seg in segments {
            let (s, e) = (seg.start as usize, seg_end(seg));
            if s >= hi {
                break;
            }
            if e <= lo {
                continue;
            }
            let (from, to) = (s.max(lo), e.min(hi));
            let nb = self.graphs[seg.fragment as usize].in_neighbors(i);
            loops::average_rows::<STREAM, ISA>(
                src,
                src_stride,
                i,
                nb,
                src_off + from,
                to - from,
                dst.add(from),
            );
        }
    }

    /// Prefetch row `i` of `share` (from [`Self::prefetch_share`]).
    #[inline(always)]
    pub(super) unsafe fn prefetch_row(&self, share: Option<(usize, usize)>, i: usize) {
        if let Some((from, to)) = share {
            simd::prefetch(self.x.as_ptr().add(i * self.d + from), to - from);
        }
    }
}
