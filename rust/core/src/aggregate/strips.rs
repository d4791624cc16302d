//! The strip walk (fewer nodes than `PACKED_MIN_NODES`): an `n x w` tile of every row stays in L2
//! while every receiver's averages are formed from it, strip by strip, a strip of all rows staying
//! in L1. Tiles whose columns alternate between fragments are gathered into fragment order first.

use super::kernel::{Kernel, LINE_FLOATS};
use crate::fragments::{Gather, Segment, Tile, PAD};
use crate::memory::HugeBuffer;
use crate::simd;

/// Columns of a tile that every receiver finishes before the next: small enough that the rows it
/// reads stay in L1 (measured best: 128 columns up to n=128, 256 beyond).
fn strip_width(n_nodes: usize) -> usize {
    if n_nodes <= 128 {
        128
    } else {
        256
    }
}

/// How many floats `ptr` lies past the start of its cache line (0 when unaligned to 4 bytes, where
/// streaming never applies anyway).
fn line_phase(ptr: *const f32) -> usize {
    (ptr as usize % 64) / 4
}

impl Kernel<'_> {
    /// One tile on the strip walk (fewer nodes than `PACKED_MIN_NODES`).
    #[inline(always)]
    pub(super) unsafe fn tile_strips<const STREAM: bool, const ISA: u8>(
        &self,
        tile: &Tile,
        next: Option<(usize, usize)>,
        gathered: &mut HugeBuffer,
        averaged: &mut HugeBuffer,
    ) {
        match &tile.perm {
            None => self.strips_of_runs::<STREAM, ISA>(tile, next),
            Some(g) => self.strips_gathered::<STREAM, ISA>(tile, g, next, gathered, averaged),
        }
    }

    /// A tile of column runs in strips of columns: every receiver reads its in-neighbours' rows of
    /// the strip from L1 instead of L2. Streaming stores want whole 64-byte lines, so each row's
    /// inner strip boundaries move down to the nearest line start of that row of `out`.
    #[inline(always)]
    unsafe fn strips_of_runs<const STREAM: bool, const ISA: u8>(
        &self,
        tile: &Tile,
        next: Option<(usize, usize)>,
    ) {
        let (n, d, c0) = (self.n, self.d, tile.col_start);
        let xp = self.x.as_ptr();
        let strip = strip_width(n);
        let tile_len = tile.col_end - tile.col_start;
        let mut first_seg = 0;
        let mut a = 0;
        while a < tile_len {
            let b = (a + strip).min(tile_len);
            let reach = a.saturating_sub(LINE_FLOATS);
            while tile.segments[first_seg].end as usize <= reach {
                first_seg += 1;
            }
            let share = Self::prefetch_share(next, a, b, tile_len);
            for i in 0..n {
                self.prefetch_row(share, i);
                let row_out = self.out.add(i * d + c0);
                let (lo, hi) = if STREAM {
                    let phase = line_phase(row_out);
                    let down = |c: usize| c - (c + phase) % LINE_FLOATS;
                    let lo = if a == 0 { 0 } else { down(a) };
                    let hi = if b == tile_len { b } else { down(b) };
                    (lo, hi)
                } else {
                    (a, b)
                };
                let segments = &tile.segments[first_seg..];
                let run_end = |seg: &Segment| seg.end as usize;
                self.average_span::<STREAM, ISA>(segments, run_end, i, lo, hi, xp, d, c0, row_out);
            }
            a = b;
        }
    }

    /// A tile whose columns alternate between fragments: gather every row of it into fragment order
    /// (`g`), average that in strips of slots (a strip of all rows stays in L1 while every receiver
    /// reads it) into `averaged`, then read each receiver's results back in column order.
    #[inline(always)]
    unsafe fn strips_gathered<const STREAM: bool, const ISA: u8>(
        &self,
        tile: &Tile,
        g: &Gather,
        next: Option<(usize, usize)>,
        gathered: &mut HugeBuffer,
        averaged: &mut HugeBuffer,
    ) {
        let (n, d, c0) = (self.n, self.d, tile.col_start);
        let xp = self.x.as_ptr();
        let w = self.slots;
        gathered.reserve_zeroed(n * w);
        averaged.reserve_zeroed(n * w);
        let gp = gathered.as_mut_ptr();
        for j in 0..n {
            simd::gather::<false, ISA>(xp.add(j * d + c0), &g.perm, gp.add(j * w));
        }
        let strip = strip_width(n);
        let ap = averaged.as_mut_ptr();
        let total = padded_end(tile.segments.last().expect("a tile has a segment"));
        let mut first_seg = 0;
        let mut a = 0;
        while a < total {
            // Strips of slots; a fragment group may span several (columns are independent).
            let b = (a + strip).min(total);
            while padded_end(&tile.segments[first_seg]) <= a {
                first_seg += 1;
            }
            let share = Self::prefetch_share(next, a, b, total);
            for i in 0..n {
                self.prefetch_row(share, i);
                let segments = &tile.segments[first_seg..];
                self.average_span::<false, ISA>(
                    segments,
                    padded_end,
                    i,
                    a,
                    b,
                    gp,
                    w,
                    0,
                    ap.add(i * w),
                );
            }
            a = b;
        }
        for i in 0..n {
            simd::gather::<STREAM, ISA>(ap.add(i * w), &g.inverse, self.out.add(i * d + c0));
        }
    }
}

/// End of a gathered fragment group including its padding slots.
fn padded_end(seg: &Segment) -> usize {
    seg.start as usize + (seg.end - seg.start).div_ceil(PAD) as usize * PAD as usize
}
