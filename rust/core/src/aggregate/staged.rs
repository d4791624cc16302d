//! The staged walk (from `STAGED_MIN_NODES` nodes on, for maps whose tiles would be gathered):
//! wide windows of columns are copied once into fragment order, where each fragment is one long
//! run, averaged there like a map of runs, and copied back.

use std::sync::Mutex;

use rayon::prelude::*;

use super::kernel::SendPtr;
use super::plan::{kernel_walk, packed_plan, Walk};
use super::tiles::aggregate_unchecked;
use crate::error::Result;
use crate::fragments::{FragmentMap, StagedPlan, Window};
use crate::graphs::Graphs;
use crate::memory::HugeBuffer;
use crate::pool::pool;
use crate::simd;

/// The two staging buffers (a window in fragment order, and its averages), shared by every call:
/// concurrent calls take turns, as they would for the pool anyway.
static STAGE: Mutex<(HugeBuffer, HugeBuffer)> = Mutex::new((HugeBuffer::new(), HugeBuffer::new()));

/// Rows each task of a staging copy handles (each row is one short gather).
const STAGE_ROWS_PER_TASK: usize = 64;

/// The kernel on staged windows: for each window, copy every row's columns into fragment order
/// (`order`), average that copy with the window's own map (one run per fragment), and copy the
/// averages back into column order (`inverse`). Every output is the same sum in the same order as
/// on the other paths, so the bits are the same.
///
/// # Safety
///
/// As [`aggregate_unchecked`], with `staged` from `map`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn aggregate_staged(
    x: &[f32],
    out: &mut [f32],
    n_nodes: usize,
    graphs: &Graphs,
    map: &FragmentMap,
    staged: &StagedPlan,
    stream: bool,
    isa: u8,
) -> Result<()> {
    let d = map.n_params();
    let isa = isa.min(simd::best_isa());
    let stream = stream && isa >= simd::AVX2;
    let mut stage = STAGE.lock().unwrap_or_else(|e| e.into_inner());
    let (staged_buf, averaged_buf) = &mut *stage;
    let widest = staged.width.min(d);
    staged_buf.reserve_zeroed(n_nodes * widest);
    averaged_buf.reserve_zeroed(n_nodes * widest);
    let call = Staging {
        x,
        out: SendPtr(out.as_mut_ptr()),
        d,
        n_nodes,
        graphs,
        staged: staged_buf.as_mut_ptr(),
        averaged: averaged_buf.as_mut_ptr(),
        stream,
        isa,
    };
    for w in &staged.windows {
        // SAFETY: the stage buffers hold `n_nodes * widest` floats, `n_nodes` rows of any window's
        // width, borrowed from the locked stage for this call only and overlapping neither `x` nor
        // `out`; `w` is from `map`, whose shape the caller guarantees.
        unsafe { call.window(w)? };
    }
    Ok(())
}

/// One call on the staged path: its buffers (both stage buffers locked for it), graphs and store
/// policy.
struct Staging<'a> {
    x: &'a [f32],
    out: SendPtr,
    d: usize,
    n_nodes: usize,
    graphs: &'a Graphs,
    staged: *mut f32,
    averaged: *mut f32,
    stream: bool,
    isa: u8,
}

impl Staging<'_> {
    /// Window `w`, staged, averaged and copied back (see [`aggregate_staged`]).
    ///
    /// # Safety
    ///
    /// `x` and `out` hold `n_nodes` rows of `d` floats, `w` is from their map (whose `K` fragments
    /// the graphs have), and both stage buffers hold `n_nodes` rows of `w`'s width, overlapping
    /// neither `x` nor `out` nor each other.
    unsafe fn window(&self, w: &Window) -> Result<()> {
        let (n_nodes, d, stream, isa) = (self.n_nodes, self.d, self.stream, self.isa);
        let (c0, cw) = (w.col_start, w.col_end - w.col_start);
        // SAFETY: (both copies) the caller's guarantees: the stage buffers hold `n_nodes * cw`
        // floats and overlap neither `x` nor `out`; every row of `x` and `out` holds columns
        // `c0..c0 + cw` (`w` is from their map); the permutations index `0..cw`.
        unsafe {
            permute_rows(
                self.x,
                d,
                c0,
                SendPtr(self.staged),
                cw,
                0,
                n_nodes,
                &w.order,
                stream,
                isa,
            )?;
        }
        let (plan, packed) = match kernel_walk(&w.map, n_nodes) {
            Walk::Tiles { plan, packed } => (plan, packed),
            // A window too narrow for its fragments to make runs: its packed tiles are gathered.
            Walk::Staged(_) => (packed_plan(&w.map), true),
        };
        // SAFETY: as above, so both views hold `n_nodes * cw` floats and do not overlap.
        let (staged_win, averaged_win) = unsafe {
            (
                std::slice::from_raw_parts(self.staged, n_nodes * cw),
                std::slice::from_raw_parts_mut(self.averaged, n_nodes * cw),
            )
        };
        // SAFETY: `w.map` has `cw` columns and `K` fragments like the graphs, and `plan` is its own.
        unsafe {
            aggregate_unchecked(
                staged_win,
                averaged_win,
                n_nodes,
                self.graphs,
                &w.map,
                &plan,
                stream,
                isa,
                packed,
            )?;
            permute_rows(
                averaged_win,
                cw,
                0,
                self.out,
                d,
                c0,
                n_nodes,
                &w.inverse,
                stream,
                isa,
            )?;
        }
        Ok(())
    }
}

/// Row `r` of the destination, `idx.len()` floats at `dst + r * dst_stride + dst_off`, gets
/// `src[r * src_stride + src_off + idx[p]]` at position `p`, for every row `r < n_rows`, on the
/// kernel's pool. Each row is first copied into a buffer of its own (one sequential read, which the
/// hardware prefetchers follow), then gathered from L1: gathering straight from strided rows reads
/// each line in permuted order, first touch from memory (n=10,000, K=16: 580 -> 390 ms).
///
/// # Safety
///
/// `src` holds every row's `src_off + idx.len()` floats, the destination rows are valid for writes
/// and overlap `src` and each other nowhere, every index is below `idx.len()`, and `stream` or
/// `isa >= AVX2` only where the CPU has AVX2.
#[allow(clippy::too_many_arguments)]
unsafe fn permute_rows(
    src: &[f32],
    src_stride: usize,
    src_off: usize,
    dst: SendPtr,
    dst_stride: usize,
    dst_off: usize,
    n_rows: usize,
    idx: &[i32],
    stream: bool,
    isa: u8,
) -> Result<()> {
    let width = idx.len();
    pool()?.install(|| {
        (0..n_rows.div_ceil(STAGE_ROWS_PER_TASK))
            .into_par_iter()
            .for_each(|task| {
                let rows = dst;
                let mut line = vec![0f32; width];
                let first = task * STAGE_ROWS_PER_TASK;
                for r in first..(first + STAGE_ROWS_PER_TASK).min(n_rows) {
                    let from = r * src_stride + src_off;
                    line.copy_from_slice(&src[from..from + width]);
                    // SAFETY: the caller's guarantees; each task writes its own rows.
                    unsafe {
                        let row = rows.0.add(r * dst_stride + dst_off);
                        if stream {
                            simd::gather::<true, { simd::AVX2 }>(line.as_ptr(), idx, row);
                        } else if isa >= simd::AVX2 {
                            simd::gather::<false, { simd::AVX2 }>(line.as_ptr(), idx, row);
                        } else {
                            simd::gather::<false, { simd::PORTABLE }>(line.as_ptr(), idx, row);
                        }
                    }
                }
                simd::store_fence();
            });
    });
    Ok(())
}
