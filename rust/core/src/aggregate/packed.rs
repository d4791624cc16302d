//! The packed walk (from `PACKED_MIN_NODES` nodes on): each row's part of a narrow tile is copied
//! into panels of [`PANEL_WIDTH`] columns that hold every row back to back, so that one panel stays
//! in L2 while every receiver reads it; the averages are written back row by row.

use super::kernel::Kernel;
use super::loops::average_chunk;
use super::plan::PACKED_GATHER_WIDTH;
use crate::fragments::{Tile, PAD};
use crate::memory::HugeBuffer;
use crate::simd;

/// Columns of a packed panel: one cache line of every row.
pub const PANEL_WIDTH: usize = 16;

/// Slots of a packed tile at most: its columns plus every fragment group's padding.
const MAX_PACKED_SLOTS: usize = PACKED_GATHER_WIDTH * (1 + PAD as usize);

/// Tasks per thread on the packed path: each pipelines a run of tiles (fewer, longer runs pay the
/// first packing and the last write-back alone less often; more balance the threads' ends).
pub(super) const PACKED_TASKS_PER_THREAD: usize = 4;

/// Rows ahead of the packing row whose part of the tile is prefetched (n=10,000: 8 rows ahead
/// cost 0.85x of none).
const PACK_PREFETCH_ROWS: usize = 8;

impl Kernel<'_> {
    /// Tiles of many rows, one after another: pack every row's part of a tile into panels of
    /// `PANEL_WIDTH` slots (row `j` of panel `p` at `p * n * PANEL_WIDTH + j * PANEL_WIDTH`), average
    /// each panel into a panel of results while it sits in L2, then write every row's results back
    /// in column order. The write-back of one tile and the packing of the next go row by row
    /// together, so that the streaming stores of the one drain while the other waits for its reads.
    /// A gathered tile is packed in its fragment order (slots, as in the strip walk) and read back
    /// through its inverse. Same additions in the same order as the strip walk.
    #[inline(always)]
    pub(super) unsafe fn tiles_packed<const STREAM: bool, const ISA: u8>(
        &self,
        tiles: &[Tile],
        packed: &mut HugeBuffer,
        averaged: &mut HugeBuffer,
    ) {
        let panel_len = self.n * PANEL_WIDTH;
        let most = tiles
            .iter()
            .map(|t| self.packed_slots(t))
            .max()
            .unwrap_or(0);
        // Zeroed when grown (here, before any tile), so that the unused lanes of a partial last
        // panel are initialised.
        packed.reserve_zeroed(most.div_ceil(PANEL_WIDTH) * panel_len);
        averaged.reserve_zeroed(most.div_ceil(PANEL_WIDTH) * panel_len);
        let (bp, qp) = (packed.as_mut_ptr(), averaged.as_mut_ptr());
        let mut row = [0f32; MAX_PACKED_SLOTS];
        let first = (&tiles[0], self.packed_slots(&tiles[0]));
        for j in 0..self.n {
            self.pack_row::<ISA>(first, j, bp);
        }
        let mut current = first;
        for t in 0..tiles.len() {
            self.average_panels::<ISA>(current, bp, qp);
            let next = tiles.get(t + 1).map(|tile| (tile, self.packed_slots(tile)));
            for j in 0..self.n {
                self.write_back_row::<STREAM, ISA>(current, j, qp, row.as_mut_ptr());
                if let Some(next) = next {
                    self.pack_row::<ISA>(next, j, bp);
                }
            }
            current = next.unwrap_or(current);
        }
    }

    /// Slots of a packed tile: its columns, or its gathered order with each group's padding.
    fn packed_slots(&self, tile: &Tile) -> usize {
        let len = match &tile.perm {
            None => tile.col_end - tile.col_start,
            Some(g) => g.perm.len(),
        };
        // The plan bounds it (columns plus at most PAD padding slots per column); the row buffer
        // of the write-back relies on it.
        assert!(len <= MAX_PACKED_SLOTS, "a packed tile of {len} slots");
        len
    }

    /// Copy row `j`'s part of `tile` (of `len` slots, [`Self::packed_slots`]) into its slots of
    /// the panels at `bp` (prefetching the row `PACK_PREFETCH_ROWS` ahead).
    #[inline(always)]
    unsafe fn pack_row<const ISA: u8>(&self, (tile, len): (&Tile, usize), j: usize, bp: *mut f32) {
        const PW: usize = PANEL_WIDTH;
        let (n, d, c0) = (self.n, self.d, tile.col_start);
        let cols = tile.col_end - c0;
        let (n_panels, whole_panels, panel_len) = (len.div_ceil(PW), len / PW, n * PW);
        let xp = self.x.as_ptr();
        if j + PACK_PREFETCH_ROWS < n {
            simd::prefetch(xp.add((j + PACK_PREFETCH_ROWS) * d + c0), cols);
        }
        let row = xp.add(j * d + c0);
        let slot = |p: usize| bp.add(p * panel_len + j * PW);
        match &tile.perm {
            None => {
                for p in 0..whole_panels {
                    copy_panel_row(row.add(p * PW), slot(p));
                }
                if whole_panels < n_panels {
                    let from = whole_panels * PW;
                    std::ptr::copy_nonoverlapping(row.add(from), slot(whole_panels), len - from);
                }
            }
            Some(g) => {
                for p in 0..n_panels {
                    let lanes = &g.perm[p * PW..(p * PW + PW).min(len)];
                    simd::gather::<false, ISA>(row, lanes, slot(p));
                }
            }
        }
    }

    /// Every receiver's averages of `tile`'s packed panels (`len` slots) at `bp`, into the panels
    /// at `qp`.
    #[inline(always)]
    unsafe fn average_panels<const ISA: u8>(
        &self,
        (tile, len): (&Tile, usize),
        bp: *const f32,
        qp: *mut f32,
    ) {
        const PW: usize = PANEL_WIDTH;
        let n = self.n;
        let panel_len = n * PW;
        // Segments end at their last real slot: padding lanes are averaged with a neighbouring
        // group or not at all, and never read back.
        let mut first_seg = 0;
        let mut lanes = [0f32; PW];
        for p in 0..len.div_ceil(PW) {
            let (lo, hi) = (p * PW, (p * PW + PW).min(len));
            while tile.segments[first_seg].end as usize <= lo {
                first_seg += 1;
            }
            let (panel, results) = (bp.add(p * panel_len), qp.add(p * panel_len));
            let seg = tile.segments[first_seg];
            if seg.start as usize <= lo && seg.end as usize >= hi {
                let g = &self.graphs[seg.fragment as usize];
                for i in 0..n {
                    let dst = results.add(i * PW);
                    average_panel_row::<ISA>(panel, i, g.in_neighbors(i), dst);
                }
                continue;
            }
            // A panel across fragments: every fragment's average over the whole panel, keeping
            // the lanes of its own slots (lanes are independent, so the bits are the same).
            for i in 0..n {
                for seg in &tile.segments[first_seg..] {
                    let (s, e) = (seg.start as usize, seg.end as usize);
                    if s >= hi {
                        break;
                    }
                    let nb = self.graphs[seg.fragment as usize].in_neighbors(i);
                    average_panel_row::<ISA>(panel, i, nb, lanes.as_mut_ptr());
                    let (from, to) = (s.max(lo) - lo, e.min(hi) - lo);
                    let dst = results.add(i * PW + from);
                    std::ptr::copy_nonoverlapping(lanes.as_ptr().add(from), dst, to - from);
                }
            }
        }
    }

    /// Write row `i`'s results of `tile` (`len` slots, panels at `qp`) to `out` in column order,
    /// through `row` (`MAX_PACKED_SLOTS` floats).
    #[inline(always)]
    unsafe fn write_back_row<const STREAM: bool, const ISA: u8>(
        &self,
        (tile, len): (&Tile, usize),
        i: usize,
        qp: *const f32,
        row: *mut f32,
    ) {
        const PW: usize = PANEL_WIDTH;
        let (n_panels, whole_panels, panel_len) = (len.div_ceil(PW), len / PW, self.n * PW);
        for p in 0..whole_panels {
            copy_panel_row(qp.add(p * panel_len + i * PW), row.add(p * PW));
        }
        if whole_panels < n_panels {
            let from = whole_panels * PW;
            let src = qp.add(whole_panels * panel_len + i * PW);
            std::ptr::copy_nonoverlapping(src, row.add(from), len - from);
        }
        let dst = self.out.add(i * self.d + tile.col_start);
        match &tile.perm {
            None => simd::copy_out::<STREAM, ISA>(row, dst, len),
            Some(g) => simd::gather::<STREAM, ISA>(row, &g.inverse, dst),
        }
    }
}

/// Copy one panel row (`PANEL_WIDTH` floats; a fixed size, so no call to memcpy).
///
/// # Safety
///
/// `src` and `dst` are valid for `PANEL_WIDTH` floats and do not overlap.
#[inline(always)]
unsafe fn copy_panel_row(src: *const f32, dst: *mut f32) {
    (dst as *mut [f32; PANEL_WIDTH])
        .write_unaligned((src as *const [f32; PANEL_WIDTH]).read_unaligned());
}

/// [`average_panel_row`] in one 512-bit register (a panel row is 16 floats).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn average_panel_row_avx512(
    panel: *const f32,
    own: usize,
    nb: &[u32],
    inv: f32,
    dst: *mut f32,
) {
    use std::arch::x86_64::{
        _mm512_add_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_storeu_ps,
    };
    const PW: usize = PANEL_WIDTH;
    let mut acc = _mm512_loadu_ps(panel.add(own * PW));
    for &j in nb {
        acc = _mm512_add_ps(acc, _mm512_loadu_ps(panel.add(j as usize * PW)));
    }
    _mm512_storeu_ps(dst, _mm512_mul_ps(acc, _mm512_set1_ps(inv)));
}

/// `dst[..16] = (panel[own] + sum_j panel[j]) * (1 / (1 + |nb|))` over the rows of a packed
/// panel (`PANEL_WIDTH` floats each, back to back).
#[inline(always)]
pub(crate) unsafe fn average_panel_row<const ISA: u8>(
    panel: *const f32,
    own: usize,
    nb: &[u32],
    dst: *mut f32,
) {
    const PW: usize = PANEL_WIDTH;
    let inv = 1.0f32 / (1 + nb.len()) as f32;
    #[cfg(target_arch = "x86_64")]
    if ISA == simd::AVX512 {
        return average_panel_row_avx512(panel, own, nb, inv, dst);
    }
    average_chunk::<PW>(panel, PW, own, nb, 0, inv, dst);
}
