//! Fragment-wise averaging of all nodes at once.
//!
//! For receiver `i` and coordinate `c` of fragment `k`:
//! `out[i, c] = (x[i, c] + sum_{j in In_k(i), ascending} x[j, c]) * (1 / (1 + |In_k(i)|))`,
//! accumulated left to right in f32 and scaled once, so the result is bit-identical whatever the
//! thread count (and equal to the obvious numpy loop that adds in the same order).
//!
//! The kernel works on column tiles: an `n x w` tile of `x` stays in L2 while every receiver's
//! average is formed from it, strip by strip (a strip of all rows stays in L1), so `x` is read from
//! memory once and `out` written once, whatever the degree and `K`. Large outputs are written with
//! streaming stores (no read-for-ownership). Tiles whose coordinates alternate between fragments
//! (coordinate-level random maps) are first gathered into fragment order, averaged in that order,
//! and gathered back into column order.
//!
//! With many nodes, a tile of every row no longer fits in cache at any useful width, and receivers
//! read their in-neighbours' rows from L3 or memory (n=10,000: 5 GB/s). From
//! [`PACKED_MIN_NODES`] on, tiles are narrow and packed: each row's part of the tile is copied (one
//! contiguous read per row) into panels of [`PANEL_WIDTH`] columns that hold every row back to back,
//! so that one panel (640 KB at n=10,000) stays in L2 while every receiver reads it.
//!
//! Gathering tiles gets dear with many nodes (each row's gather, and every fragment group of a
//! panel, costs again per row). From [`STAGED_MIN_NODES`] on, maps whose tiles would be gathered
//! are staged instead: wide windows of columns (64 MB for all rows) are copied once into fragment
//! order, where each fragment is one long run, averaged there like a map of runs, and copied back.

use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::bail;
use crate::boundary::{check_shapes, Checked};
use crate::error::Result;
use crate::fragments::{FragmentMap, Segment, StagedPlan, Tile, TilePlan, MIN_MEAN_RUN, PAD};
use crate::graphs::{Digraph, Graphs};
use crate::memory::HugeBuffer;
use crate::pool::pool;

/// Bytes of `x` one tile may occupy: the tile, its gathered copy and its averages stay in L2 while
/// every receiver reads from them. Measured at n=64, d=1e6 on a 2-core Xeon (2 MiB L2): 256 KiB
/// beats 512 KiB for coordinate-level random maps (35 vs 43 ms) and ties for contiguous ones.
const TILE_BYTES: usize = 256 * 1024;

/// Outputs at least this large are written with non-temporal (streaming) stores: they would not stay
/// in cache anyway, and skipping the read-for-ownership of every output line roughly halves the
/// kernel's time at n=64, d=1e6 (measured on a 2-core Xeon: 84 -> 41 ms single-threaded).
/// Smaller outputs use ordinary stores so that the caller finds them in cache.
pub(crate) const STREAM_MIN_BYTES: usize = 16 << 20;

/// Narrowest tile: each row's part of a tile is read as one stream, and the hardware prefetchers
/// want long ones (n=256: 88 ms at 512 columns, 105 ms at 256).
const MIN_TILE_WIDTH: usize = 512;

/// From this many nodes on, column-run tiles take the packed path. Measured on the 2-core EPYC
/// (d=4e8/n, contiguous K=1, 2 threads, best of 5; strip walk vs packed with its pipelined
/// write-back): n=2,000 107 vs 127 ms, 2,500 98 vs 120, 3,000 135 vs 138, 3,500 180 vs 138,
/// 4,000 157 vs 127, 6,000 167 vs 142.
pub const PACKED_MIN_NODES: usize = 3000;

/// Columns of a packed panel: one cache line of every row.
pub const PANEL_WIDTH: usize = 16;

/// Tile width on the packed path: 64 columns (256 bytes read per row, 2.5 MB packed at n=10,000)
/// measured best against 128 and 256 (whose packed tiles crowd L3 with two threads).
const PACKED_TILE_WIDTH: usize = 64;

/// Column-tile width for `n` rows of a map of column runs: a multiple of 64 floats, between 512
/// and 16384, or `PACKED_TILE_WIDTH` from `PACKED_MIN_NODES` nodes on.
pub fn tile_width(n_nodes: usize) -> usize {
    if n_nodes >= PACKED_MIN_NODES {
        return PACKED_TILE_WIDTH;
    }
    let w = TILE_BYTES / (4 * n_nodes.max(1));
    (w / 64 * 64).clamp(MIN_TILE_WIDTH, 16384)
}

/// Packed tiles are walked run by run when their runs average at least this many columns: a
/// panel across fragments costs one more average per fragment in it, while gathering a tile of
/// every row misses L2 at these node counts (n=10,000, d=40,000, contiguous K=16, whose 15 tiles
/// across a fragment boundary were gathered: 402 ms against 356 ms with blocks, single-threaded).
const PACKED_MIN_MEAN_RUN: usize = 16;

/// Tile width on the packed path for maps whose runs are short (a staged window too narrow for its
/// fragments to make runs): gathered into fragment order, 128 columns give each fragment group of
/// K=16 about 8 slots, so that most panels hold one or two groups (each costs one more average).
const PACKED_GATHER_WIDTH: usize = 128;

/// Slots of a packed tile at most: its columns plus every fragment group's padding.
const MAX_PACKED_SLOTS: usize = PACKED_GATHER_WIDTH * (1 + PAD as usize);

/// Maps whose tiles would be gathered (coordinate-level random maps, short blocks) take the staged
/// path from this many nodes on: each window of columns is copied in fragment order into a staging
/// buffer, averaged there as long column runs, and copied back. Measured at d=4e8/n, K=16 random,
/// 2 threads, against gathering each tile (strips below 2,000 nodes, packed tiles above): n=512
/// 268 vs 249 ms, n=700 276 vs 278, n=1,000 280 vs 315, n=2,000 314 vs 460, n=4,000 399 vs 529,
/// n=10,000 390 vs 814.
pub const STAGED_MIN_NODES: usize = 1000;

/// Bytes of one staging buffer (there are two: the staged window and its averages). At n=10,000 a
/// window is 1,664 columns, so K=16 fragments make runs of about 100 columns.
const STAGE_BYTES: usize = 64 << 20;

/// Columns of a staging window for `n_nodes` rows: a multiple of 64 that fills `STAGE_BYTES`.
fn staged_width(n_nodes: usize) -> usize {
    (STAGE_BYTES / (4 * n_nodes.max(1)) / 64 * 64).max(64)
}

/// How the kernel walks a map.
enum Walk {
    /// Column tiles of the map itself, strip by strip or (`packed`) packed into panels.
    Tiles { plan: Arc<TilePlan>, packed: bool },
    /// Windows staged in fragment order, each walked as the column runs of its own map.
    Staged(Arc<StagedPlan>),
}

/// The walk for `n_nodes` rows of `map`: packed tiles from `PACKED_MIN_NODES` on, staged windows
/// from `STAGED_MIN_NODES` on for maps whose packed tiles would be gathered, strips otherwise.
fn kernel_walk(map: &FragmentMap, n_nodes: usize) -> Walk {
    if n_nodes >= STAGED_MIN_NODES {
        let plan = packed_plan(map);
        if plan.width == PACKED_GATHER_WIDTH {
            return Walk::Staged(map.staged_plan(staged_width(n_nodes)));
        }
        if n_nodes >= PACKED_MIN_NODES {
            return Walk::Tiles { plan, packed: true };
        }
    }
    Walk::Tiles {
        plan: map.plan(tile_width(n_nodes), MIN_MEAN_RUN),
        packed: false,
    }
}

/// The packed path's plan: 64-column tiles walked run by run, or 128-column tiles when most tiles
/// of 64 columns would be gathered.
fn packed_plan(map: &FragmentMap) -> Arc<TilePlan> {
    let runs = map.plan(PACKED_TILE_WIDTH, PACKED_MIN_MEAN_RUN);
    let gathered = runs.tiles.iter().filter(|t| t.perm.is_some()).count();
    if 2 * gathered > runs.tiles.len() {
        map.plan(PACKED_GATHER_WIDTH, PACKED_MIN_MEAN_RUN)
    } else {
        runs
    }
}

/// Tasks per thread on the packed path: each pipelines a run of tiles (fewer, longer runs pay the
/// first packing and the last write-back alone less often; more balance the threads' ends).
const PACKED_TASKS_PER_THREAD: usize = 4;

/// Rows ahead of the packing row whose part of the tile is prefetched (n=10,000: 8 rows ahead
/// cost 0.85x of none).
const PACK_PREFETCH_ROWS: usize = 8;

/// Columns of a tile that every receiver finishes before the next: small enough that the rows it
/// reads stay in L1 (measured best: 128 columns up to n=128, 256 beyond).
fn strip_width(n_nodes: usize) -> usize {
    if n_nodes <= 128 {
        128
    } else {
        256
    }
}

/// Floats per 64-byte cache line.
const LINE_FLOATS: usize = 16;

/// How many floats `ptr` lies past the start of its cache line (0 when unaligned to 4 bytes, where
/// streaming never applies anyway).
fn line_phase(ptr: *const f32) -> usize {
    (ptr as usize % 64) / 4
}

thread_local! {
    /// Per-thread buffers of gathered tiles (the tile in fragment order, and its averages), kept
    /// between calls so that a call allocates nothing once warm.
    static SCRATCH: std::cell::RefCell<(HugeBuffer, HugeBuffer)> =
        const { std::cell::RefCell::new((HugeBuffer::new(), HugeBuffer::new())) };
}

/// An output pointer, shared by the tasks of a parallel section.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the pointer is only dereferenced inside the kernel's parallel sections (tile tasks, staging
// copies), while the buffer it came from is borrowed for the whole section, and the tasks write
// disjoint column ranges or rows: sending it to another thread or sharing it creates no data race.
unsafe impl Send for SendPtr {}
// SAFETY: as for `Send`; the tasks only copy the pointer out of the shared reference.
unsafe impl Sync for SendPtr {}

/// Average `x` (row-major `n_nodes x n_params`) into `out` (same shape; `&mut` cannot overlap `x`).
pub fn aggregate(
    x: &[f32],
    out: &mut [f32],
    n_nodes: usize,
    graphs: &Graphs,
    map: &FragmentMap,
) -> Result<()> {
    check_shapes(n_nodes, map.n_params(), graphs, map)?.run(x, out)
}

impl Checked<'_> {
    /// Run the kernel on buffers of the checked shape. The length test is what keeps this safe for
    /// any slices; the binding's slices always pass it (they come from the checked arrays).
    pub fn run(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        let (n, d) = (self.n_nodes, self.n_params);
        if x.len() != n * d || out.len() != x.len() {
            bail!(
                "params has {} values and out has {}, expected n_nodes*n_params = {n}*{d}",
                x.len(),
                out.len()
            );
        }
        let stream = 4 * out.len() >= STREAM_MIN_BYTES;
        let isa = simd::best_isa();
        // SAFETY: `Checked` holds graphs of `n` nodes and `K` fragments and a map of `d` columns
        // and `K` fragments (`check_shapes`), the plans are the map's, and both slices hold `n * d`
        // floats (just above).
        unsafe {
            match kernel_walk(self.map, n) {
                Walk::Tiles { plan, packed } => aggregate_unchecked(
                    x,
                    out,
                    n,
                    self.graphs,
                    self.map,
                    &plan,
                    stream,
                    isa,
                    packed,
                ),
                Walk::Staged(staged) => {
                    aggregate_staged(x, out, n, self.graphs, self.map, &staged, stream, isa)
                }
            }
        }
    }
}

/// The kernel after the shape checks. `stream` asks for non-temporal stores, which need AVX2; `isa`
/// is the widest instruction set the loops may use ([`simd::PORTABLE`], [`simd::AVX2`] or
/// [`simd::AVX512`]), lowered to what the CPU has (tests pass each to run every version).
/// `plan` is one of `map`'s and `packed` says whether it is walked by the packed path (both from
/// [`kernel_walk`]; tests force the packed path with [`packed_plan`]).
///
/// # Safety
///
/// `x` and `out` hold `n_nodes * map.n_params()` floats, `graphs` has `n_nodes` nodes and
/// `map.n_fragments()` fragments, and `plan` comes from `map`: the loops index the buffers with
/// raw pointers.
#[allow(clippy::too_many_arguments)]
unsafe fn aggregate_unchecked(
    x: &[f32],
    out: &mut [f32],
    n_nodes: usize,
    graphs: &Graphs,
    map: &FragmentMap,
    plan: &TilePlan,
    stream: bool,
    isa: u8,
    packed: bool,
) -> Result<()> {
    let n_params = map.n_params();
    let width = plan.width;
    // 512-bit loads straddle two cache lines unless every row starts at the same line phase, which
    // 256-bit ones do half as often (n=256, d=1,562,500: 76 -> 85 ms with 512 bits).
    let isa = if n_params.is_multiple_of(LINE_FLOATS) {
        isa
    } else {
        isa.min(simd::AVX2)
    };
    let isa = isa.min(simd::best_isa());
    let stream = stream && isa >= simd::AVX2;
    let out_ptr = SendPtr(out.as_mut_ptr());
    let pool = pool()?;
    // Packed tiles go in runs (each task pipelines its tiles' packing and write-back); the strip
    // walk takes one tile a task.
    let per_task = if packed {
        plan.tiles
            .len()
            .div_ceil(PACKED_TASKS_PER_THREAD * pool.current_num_threads())
    } else {
        1
    };
    pool.install(|| {
        plan.tiles
            .par_chunks(per_task)
            .enumerate()
            .for_each(|(c, tiles)| {
                // The tile after this task's is usually this thread's next.
                let next = plan
                    .tiles
                    .get((c + 1) * per_task)
                    .map(|nt| (nt.col_start, nt.col_end));
                let ptr = out_ptr;
                let kernel = Kernel {
                    x,
                    out: ptr.0,
                    n: n_nodes,
                    d: n_params,
                    // Gathered tiles hold up to `width` columns plus every fragment group's padding,
                    // in rows of whole cache lines.
                    slots: (width + map.n_fragments().min(width) * PAD as usize)
                        .next_multiple_of(LINE_FLOATS),
                    graphs: graphs.fragments(),
                    isa,
                    packed,
                };
                // SAFETY: tiles cover disjoint column ranges of `0..n_params`, so no two tasks write the
                // same element; rows are `0..n_nodes` and every in-neighbour id is below `n_nodes`
                // (`Digraph` is built only in this crate, from ids checked against the node count), so
                // with the caller's guarantee on the lengths every access stays inside `x` and `out`.
                SCRATCH.with_borrow_mut(|(gathered, averaged)| unsafe {
                    if stream {
                        kernel.tiles::<true>(tiles, next, gathered, averaged);
                        simd::store_fence();
                    } else {
                        kernel.tiles::<false>(tiles, next, gathered, averaged);
                    }
                });
            });
    });
    Ok(())
}

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
unsafe fn aggregate_staged(
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
    let (staged_ptr, averaged_ptr) = (staged_buf.as_mut_ptr(), averaged_buf.as_mut_ptr());
    let out_ptr = SendPtr(out.as_mut_ptr());
    for w in &staged.windows {
        let (c0, cw) = (w.col_start, w.col_end - w.col_start);
        // SAFETY: (both copies) the stage buffers hold `n_nodes * widest >= n_nodes * cw` floats,
        // borrowed from the locked stage for this call only and overlapping neither `x` nor
        // `out`; every row of `x` and `out` holds columns `c0..c0 + cw` (`w` is from `map`); the
        // permutations index `0..cw`.
        unsafe {
            permute_rows(
                x,
                d,
                c0,
                SendPtr(staged_ptr),
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
                std::slice::from_raw_parts(staged_ptr, n_nodes * cw),
                std::slice::from_raw_parts_mut(averaged_ptr, n_nodes * cw),
            )
        };
        // SAFETY: `w.map` has `cw` columns and `K` fragments like the graphs, and `plan` is its own.
        unsafe {
            aggregate_unchecked(
                staged_win,
                averaged_win,
                n_nodes,
                graphs,
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
                out_ptr,
                d,
                c0,
                n_nodes,
                &w.inverse,
                stream,
                isa,
            )?;
        }
    }
    Ok(())
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

/// What every tile task shares: the buffers and the graphs.
struct Kernel<'a> {
    x: &'a [f32],
    out: *mut f32,
    n: usize,
    d: usize,
    slots: usize,
    graphs: &'a [Digraph],
    /// Which instantiation of the loops to run (detected once per call; wider ones on x86_64 only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    isa: u8,
    /// Whether column-run tiles take the packed path ([`PACKED_MIN_NODES`]).
    packed: bool,
}

impl Kernel<'_> {
    /// The columns of the next tile whose rows are prefetched during strip `a..b` of `total`: the
    /// same share of it. With one memory stream per row the hardware prefetchers fall behind
    /// (n=64: 19 -> 17 ms), and gathers read out of order, which they do not follow at all.
    #[inline(always)]
    fn prefetch_share(
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
    unsafe fn average_span<const STREAM: bool, const ISA: u8>(
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
            simd::average_rows::<STREAM, ISA>(
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
    unsafe fn prefetch_row(&self, share: Option<(usize, usize)>, i: usize) {
        if let Some((from, to)) = share {
            simd::prefetch(self.x.as_ptr().add(i * self.d + from), to - from);
        }
    }

    /// Average one column tile; `STREAM` writes `out` with non-temporal stores. The ISA is chosen
    /// once per tile so that the inner loops inline into one function of that instruction set.
    ///
    /// # Safety
    ///
    /// `tile` is from the plan of the kernel's map (its columns lie in `0..d`), `x` and `out` hold
    /// `n * d` floats, no other task writes the tile's columns, and `isa` is at most what the CPU
    /// has. The other unsafe methods here are its parts and need the same.
    unsafe fn tiles<const STREAM: bool>(
        &self,
        tiles: &[Tile],
        next: Option<(usize, usize)>,
        gathered: &mut HugeBuffer,
        averaged: &mut HugeBuffer,
    ) {
        #[cfg(target_arch = "x86_64")]
        match self.isa {
            simd::AVX512 => return self.tiles_avx512::<STREAM>(tiles, next, gathered, averaged),
            simd::AVX2 => return self.tiles_avx2::<STREAM>(tiles, next, gathered, averaged),
            _ => {}
        }
        self.tiles_with::<STREAM, { simd::PORTABLE }>(tiles, next, gathered, averaged)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn tiles_avx512<const STREAM: bool>(
        &self,
        tiles: &[Tile],
        next: Option<(usize, usize)>,
        gathered: &mut HugeBuffer,
        averaged: &mut HugeBuffer,
    ) {
        self.tiles_with::<STREAM, { simd::AVX512 }>(tiles, next, gathered, averaged)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn tiles_avx2<const STREAM: bool>(
        &self,
        tiles: &[Tile],
        next: Option<(usize, usize)>,
        gathered: &mut HugeBuffer,
        averaged: &mut HugeBuffer,
    ) {
        self.tiles_with::<STREAM, { simd::AVX2 }>(tiles, next, gathered, averaged)
    }

    #[inline(always)]
    unsafe fn tiles_with<const STREAM: bool, const ISA: u8>(
        &self,
        tiles: &[Tile],
        next: Option<(usize, usize)>,
        gathered: &mut HugeBuffer,
        averaged: &mut HugeBuffer,
    ) {
        if self.packed {
            return self.tiles_packed::<STREAM, ISA>(tiles, gathered, averaged);
        }
        for (t, tile) in tiles.iter().enumerate() {
            let after = tiles.get(t + 1).map(|nt| (nt.col_start, nt.col_end));
            self.tile_strips::<STREAM, ISA>(tile, after.or(next), gathered, averaged);
        }
    }

    /// One tile on the strip walk (fewer nodes than `PACKED_MIN_NODES`).
    #[inline(always)]
    unsafe fn tile_strips<const STREAM: bool, const ISA: u8>(
        &self,
        tile: &Tile,
        next: Option<(usize, usize)>,
        gathered: &mut HugeBuffer,
        averaged: &mut HugeBuffer,
    ) {
        let (n, d, c0) = (self.n, self.d, tile.col_start);
        let xp = self.x.as_ptr();
        match &tile.perm {
            None => {
                // Strips of columns: every receiver reads its in-neighbours' rows of the strip from
                // L1 instead of L2. Streaming stores want whole 64-byte lines, so each row's inner
                // strip boundaries move down to the nearest line start of that row of `out`.
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
                        self.average_span::<STREAM, ISA>(
                            segments, run_end, i, lo, hi, xp, d, c0, row_out,
                        );
                    }
                    a = b;
                }
            }
            Some(g) => {
                // Gather every row of the tile into fragment order, average it in strips of slots
                // (a strip of all rows stays in L1 while every receiver reads it) into `averaged`,
                // then read each receiver's results back in column order.
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
                    simd::gather::<STREAM, ISA>(
                        ap.add(i * w),
                        &g.inverse,
                        self.out.add(i * d + c0),
                    );
                }
            }
        }
    }

    /// Tiles of many rows, one after another: pack every row's part of a tile into panels of
    /// `PANEL_WIDTH` slots (row `j` of panel `p` at `p * n * PANEL_WIDTH + j * PANEL_WIDTH`), average
    /// each panel into a panel of results while it sits in L2, then write every row's results back
    /// in column order. The write-back of one tile and the packing of the next go row by row
    /// together, so that the streaming stores of the one drain while the other waits for its reads.
    /// A gathered tile is packed in its fragment order (slots, as in the strip walk) and read back
    /// through its inverse. Same additions in the same order as the strip walk.
    #[inline(always)]
    unsafe fn tiles_packed<const STREAM: bool, const ISA: u8>(
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
                    simd::average_panel_row::<ISA>(panel, i, g.in_neighbors(i), dst);
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
                    simd::average_panel_row::<ISA>(panel, i, nb, lanes.as_mut_ptr());
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

/// End of a gathered fragment group including its padding slots.
fn padded_end(seg: &Segment) -> usize {
    seg.start as usize + (seg.end - seg.start).div_ceil(PAD) as usize * PAD as usize
}

/// The inner loops, with AVX2 and AVX-512 versions picked at run time on x86_64.
///
/// Safety, for every unsafe function here: each pointer is valid for every offset the function's doc
/// names (reads from sources, writes to `dst`, which overlaps no source), the AVX2 variants
/// (`ISA >= AVX2`, `STREAM = true`, `*_avx2`) run only where [`best_isa`] is at least `AVX2`, and
/// the AVX-512 ones (`ISA == AVX512`, `*_avx512`) only where it is `AVX512`.
pub(crate) mod simd {
    /// Instruction sets of the loops, narrowest first.
    pub const PORTABLE: u8 = 0;
    pub const AVX2: u8 = 1;
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub const AVX512: u8 = 2;

    /// The widest instruction set of the loops this CPU runs (AVX-512 needs AVX512F).
    pub fn best_isa() -> u8 {
        #[cfg(target_arch = "x86_64")]
        {
            use std::sync::OnceLock;
            static BEST: OnceLock<u8> = OnceLock::new();
            *BEST.get_or_init(|| {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    AVX512
                } else if std::arch::is_x86_feature_detected!("avx2") {
                    AVX2
                } else {
                    PORTABLE
                }
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            PORTABLE
        }
    }

    /// Orders this thread's streaming stores before whatever it does next (the pool's join).
    pub fn store_fence() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: sfence has no operands and is part of SSE, which every x86_64 CPU has.
        unsafe {
            std::arch::x86_64::_mm_sfence()
        }
    }

    /// Hint the cache to load `len` floats from `ptr` (one hint per 64-byte line).
    #[inline(always)]
    pub unsafe fn prefetch(ptr: *const f32, len: usize) {
        let mut off = 0;
        while off < len {
            prefetch_line(ptr.wrapping_add(off));
            off += 16;
        }
    }

    /// Hint the cache to load the line holding `ptr`.
    #[inline(always)]
    pub fn prefetch_line<T>(ptr: *const T) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint: it never faults, whatever the address.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(ptr as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = ptr;
    }

    /// `dst[p] = src[idx[p]]` for every `p`. `STREAM` (AVX2 only) bypasses the cache for `dst`.
    #[inline(always)]
    pub unsafe fn gather<const STREAM: bool, const ISA: u8>(
        src: *const f32,
        idx: &[i32],
        dst: *mut f32,
    ) {
        #[cfg(target_arch = "x86_64")]
        if ISA >= AVX2 {
            return gather_avx2::<STREAM>(src, idx, dst);
        }
        for (p, &i) in idx.iter().enumerate() {
            *dst.add(p) = *src.add(i as usize);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn gather_avx2<const STREAM: bool>(src: *const f32, idx: &[i32], dst: *mut f32) {
        use std::arch::x86_64::{
            __m256i, _mm256_i32gather_ps, _mm256_loadu_si256, _mm256_storeu_ps, _mm256_stream_ps,
        };
        let mut p = 0;
        if STREAM {
            // Scalar head up to 32-byte alignment of dst, as streaming stores require.
            while p < idx.len() && !(dst.add(p) as usize).is_multiple_of(32) {
                stream_scalar(dst.add(p), *src.add(*idx.get_unchecked(p) as usize));
                p += 1;
            }
        }
        while p + 8 <= idx.len() {
            let lanes = _mm256_loadu_si256(idx.as_ptr().add(p) as *const __m256i);
            let v = _mm256_i32gather_ps::<4>(src, lanes);
            if STREAM {
                _mm256_stream_ps(dst.add(p), v);
            } else {
                _mm256_storeu_ps(dst.add(p), v);
            }
            p += 8;
        }
        while p < idx.len() {
            let v = *src.add(*idx.get_unchecked(p) as usize);
            if STREAM {
                stream_scalar(dst.add(p), v);
            } else {
                *dst.add(p) = v;
            }
            p += 1;
        }
    }

    /// `dst[c] = (row_own[c] + sum_j row_j[c]) * inv` for `c in off..off+len`, rows `stride` apart.
    /// `STREAM` (AVX2 only) writes whole aligned vectors of `dst` with non-temporal stores.
    #[inline(always)]
    pub unsafe fn average_rows<const STREAM: bool, const ISA: u8>(
        base: *const f32,
        stride: usize,
        own: usize,
        nb: &[u32],
        off: usize,
        len: usize,
        dst: *mut f32,
    ) {
        #[cfg(target_arch = "x86_64")]
        if ISA == AVX512 {
            return average_rows_avx512::<STREAM>(base, stride, own, nb, off, len, dst);
        }
        #[cfg(target_arch = "x86_64")]
        if ISA >= AVX2 {
            return average_rows_avx2::<STREAM>(base, stride, own, nb, off, len, dst);
        }
        let inv = 1.0f32 / (1 + nb.len()) as f32;
        let mut c = 0;
        while c + 32 <= len {
            average_chunk::<32>(base, stride, own, nb, off + c, inv, dst.add(c));
            c += 32;
        }
        while c < len {
            average_chunk::<1>(base, stride, own, nb, off + c, inv, dst.add(c));
            c += 1;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn average_rows_avx2<const STREAM: bool>(
        base: *const f32,
        stride: usize,
        own: usize,
        nb: &[u32],
        off: usize,
        len: usize,
        dst: *mut f32,
    ) {
        use std::arch::x86_64::{_mm256_loadu_ps, _mm256_stream_ps};
        let inv = 1.0f32 / (1 + nb.len()) as f32;
        let mut chunk = [0f32; 32];
        let mut c = 0;
        if STREAM {
            // Each output depends only on its own column, so splitting the range anywhere gives the
            // same bits; the head runs scalar up to 32-byte alignment of dst.
            while c < len && !(dst.add(c) as usize).is_multiple_of(32) {
                average_chunk::<1>(base, stride, own, nb, off + c, inv, chunk.as_mut_ptr());
                stream_scalar(dst.add(c), chunk[0]);
                c += 1;
            }
        }
        while c + 32 <= len {
            if STREAM {
                average_chunk::<32>(base, stride, own, nb, off + c, inv, chunk.as_mut_ptr());
                for q in 0..4 {
                    _mm256_stream_ps(
                        dst.add(c + 8 * q),
                        _mm256_loadu_ps(chunk.as_ptr().add(8 * q)),
                    );
                }
            } else {
                average_chunk::<32>(base, stride, own, nb, off + c, inv, dst.add(c));
            }
            c += 32;
        }
        while c + 8 <= len {
            if STREAM {
                average_chunk::<8>(base, stride, own, nb, off + c, inv, chunk.as_mut_ptr());
                _mm256_stream_ps(dst.add(c), _mm256_loadu_ps(chunk.as_ptr()));
            } else {
                average_chunk::<8>(base, stride, own, nb, off + c, inv, dst.add(c));
            }
            c += 8;
        }
        while c < len {
            if STREAM {
                average_chunk::<1>(base, stride, own, nb, off + c, inv, chunk.as_mut_ptr());
                stream_scalar(dst.add(c), chunk[0]);
            } else {
                average_chunk::<1>(base, stride, own, nb, off + c, inv, dst.add(c));
            }
            c += 1;
        }
    }

    /// [`average_rows`] with 512-bit registers: 64 outputs per pass over the neighbours (four
    /// accumulators), then 16, and the last few by the AVX2 loop.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn average_rows_avx512<const STREAM: bool>(
        base: *const f32,
        stride: usize,
        own: usize,
        nb: &[u32],
        off: usize,
        len: usize,
        dst: *mut f32,
    ) {
        use std::arch::x86_64::_mm512_set1_ps;
        let inv_one = 1.0f32 / (1 + nb.len()) as f32;
        let inv = _mm512_set1_ps(inv_one);
        let mut c = 0;
        if STREAM {
            // Scalar head up to the 64-byte alignment of 512-bit streams (columns are independent).
            let mut one = [0f32; 1];
            while c < len && !(dst.add(c) as usize).is_multiple_of(64) {
                average_chunk::<1>(base, stride, own, nb, off + c, inv_one, one.as_mut_ptr());
                stream_scalar(dst.add(c), one[0]);
                c += 1;
            }
        }
        while c + 64 <= len {
            average_vectors_avx512::<4, STREAM>(base, stride, own, nb, off + c, inv, dst.add(c));
            c += 64;
        }
        while c + 16 <= len {
            average_vectors_avx512::<1, STREAM>(base, stride, own, nb, off + c, inv, dst.add(c));
            c += 16;
        }
        if c < len {
            average_rows_avx2::<STREAM>(base, stride, own, nb, off + c, len - c, dst.add(c));
        }
    }

    /// `16 * V` consecutive outputs in `V` 512-bit accumulators (own row, then every neighbour).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn average_vectors_avx512<const V: usize, const STREAM: bool>(
        base: *const f32,
        stride: usize,
        own: usize,
        nb: &[u32],
        col: usize,
        inv: std::arch::x86_64::__m512,
        dst: *mut f32,
    ) {
        use std::arch::x86_64::{
            _mm512_add_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_storeu_ps, _mm512_stream_ps,
        };
        let own_row = base.add(own * stride + col);
        let mut acc = [_mm512_loadu_ps(own_row); V];
        for (v, a) in acc.iter_mut().enumerate().skip(1) {
            *a = _mm512_loadu_ps(own_row.add(16 * v));
        }
        for &j in nb {
            let row = base.add(j as usize * stride + col);
            for (v, a) in acc.iter_mut().enumerate() {
                *a = _mm512_add_ps(*a, _mm512_loadu_ps(row.add(16 * v)));
            }
        }
        for (v, a) in acc.iter().enumerate() {
            let avg = _mm512_mul_ps(*a, inv);
            if STREAM {
                _mm512_stream_ps(dst.add(16 * v), avg);
            } else {
                _mm512_storeu_ps(dst.add(16 * v), avg);
            }
        }
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
        const PW: usize = super::PANEL_WIDTH;
        let mut acc = _mm512_loadu_ps(panel.add(own * PW));
        for &j in nb {
            acc = _mm512_add_ps(acc, _mm512_loadu_ps(panel.add(j as usize * PW)));
        }
        _mm512_storeu_ps(dst, _mm512_mul_ps(acc, _mm512_set1_ps(inv)));
    }

    /// `dst[..16] = (panel[own] + sum_j panel[j]) * (1 / (1 + |nb|))` over the rows of a packed
    /// panel (`PANEL_WIDTH` floats each, back to back).
    #[inline(always)]
    pub unsafe fn average_panel_row<const ISA: u8>(
        panel: *const f32,
        own: usize,
        nb: &[u32],
        dst: *mut f32,
    ) {
        const PW: usize = super::PANEL_WIDTH;
        let inv = 1.0f32 / (1 + nb.len()) as f32;
        #[cfg(target_arch = "x86_64")]
        if ISA == AVX512 {
            return average_panel_row_avx512(panel, own, nb, inv, dst);
        }
        average_chunk::<PW>(panel, PW, own, nb, 0, inv, dst);
    }

    /// `dst[..len] = src[..len]`; `STREAM` (AVX2 only) writes `dst` with non-temporal stores.
    #[inline(always)]
    pub unsafe fn copy_out<const STREAM: bool, const ISA: u8>(
        src: *const f32,
        dst: *mut f32,
        len: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if STREAM && ISA >= AVX2 {
            use std::arch::x86_64::{_mm256_loadu_ps, _mm256_stream_ps};
            let mut c = 0;
            while c < len && !(dst.add(c) as usize).is_multiple_of(32) {
                stream_scalar(dst.add(c), *src.add(c));
                c += 1;
            }
            while c + 8 <= len {
                _mm256_stream_ps(dst.add(c), _mm256_loadu_ps(src.add(c)));
                c += 8;
            }
            while c < len {
                stream_scalar(dst.add(c), *src.add(c));
                c += 1;
            }
            return;
        }
        std::ptr::copy_nonoverlapping(src, dst, len);
    }

    /// A non-temporal store of one float (movnti), so that a line's head and tail do not pull the
    /// line into cache while its middle is streamed.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub unsafe fn stream_scalar(dst: *mut f32, v: f32) {
        std::arch::x86_64::_mm_stream_si32(dst as *mut i32, v.to_bits() as i32);
    }

    /// `L` consecutive outputs, summed in registers across the own row and every in-neighbour row.
    #[inline(always)]
    unsafe fn average_chunk<const L: usize>(
        base: *const f32,
        stride: usize,
        own: usize,
        nb: &[u32],
        off: usize,
        inv: f32,
        dst: *mut f32,
    ) {
        let mut acc = [0f32; L];
        let own_row = base.add(own * stride + off);
        for (l, a) in acc.iter_mut().enumerate() {
            *a = *own_row.add(l);
        }
        for &j in nb {
            let r = base.add(j as usize * stride + off);
            for (l, a) in acc.iter_mut().enumerate() {
                *a += *r.add(l);
            }
        }
        for (l, a) in acc.iter().enumerate() {
            *dst.add(l) = *a * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphs::{sample_graphs, GraphMode};

    fn reference(x: &[f32], n: usize, graphs: &Graphs, map: &FragmentMap) -> Vec<f32> {
        let d = map.n_params();
        let mut out = vec![0f32; n * d];
        for i in 0..n {
            for c in 0..d {
                let nb = graphs.fragments()[map.assignment()[c] as usize].in_neighbors(i);
                let mut a = x[i * d + c];
                for &j in nb {
                    a += x[j as usize * d + c];
                }
                out[i * d + c] = a * (1.0f32 / (1 + nb.len()) as f32);
            }
        }
        out
    }

    fn data(n: usize, d: usize) -> Vec<f32> {
        (0..n * d)
            .map(|v| ((v * 7919) % 1013) as f32 / 17.0 - 30.0)
            .collect()
    }

    #[test]
    fn matches_reference_bit_for_bit() {
        for &(n, d, k) in &[
            (5usize, 37usize, 3usize),
            (16, 3000, 16),
            (40, 5000, 7),
            (3, 130, 1),
            // rows of whole cache lines: the 512-bit loops run (other widths fall back to 256)
            (24, 2048, 5),
        ] {
            let x = data(n, d);
            for map in [
                FragmentMap::contiguous(d, k).unwrap(),
                FragmentMap::random(d, k, 4, None).unwrap(),
                FragmentMap::blocks(d, k, 5, 4).unwrap(),
                // runs of 20: packed tiles walked run by run, panels across two or three fragments
                FragmentMap::blocks(d, k, 20.min(d / k), 4).unwrap(),
                // long blocks: many runs per tile, walked in strips without gathering
                FragmentMap::blocks(d, k, 100.min(d / k), 4).unwrap(),
            ] {
                for mode in [GraphMode::ElOracle, GraphMode::ElLocal, GraphMode::Shatter] {
                    let g = sample_graphs(n, k, 2, 1, 2, mode).unwrap();
                    let want = reference(&x, n, &g, &map);
                    // portable loops, AVX2 and AVX-512 loops with and without streaming stores (each
                    // lowered to what this CPU has); strips, packed
                    // tiles, and windows staged in fragment order (two widths: one window, several)
                    for (isa, stream) in [
                        (simd::PORTABLE, false),
                        (simd::AVX2, false),
                        (simd::AVX2, true),
                        (simd::AVX512, false),
                        (simd::AVX512, true),
                    ] {
                        for walk in 0..4 {
                            // Offset by one float so rows start off the 32-byte alignment of streams.
                            let mut buf = vec![f32::NAN; n * d + 1];
                            let out = &mut buf[1..];
                            // SAFETY: `x`, `out` hold n * d floats; `g` has n nodes, k fragments;
                            // every plan is the map's.
                            unsafe {
                                match walk {
                                    0 => {
                                        let plan = map.plan(tile_width(n), MIN_MEAN_RUN);
                                        aggregate_unchecked(
                                            &x, out, n, &g, &map, &plan, stream, isa, false,
                                        )
                                    }
                                    1 => {
                                        let plan = packed_plan(&map);
                                        aggregate_unchecked(
                                            &x, out, n, &g, &map, &plan, stream, isa, true,
                                        )
                                    }
                                    _ => {
                                        let width = if walk == 2 { d } else { 64 };
                                        let staged = map.staged_plan(width);
                                        aggregate_staged(&x, out, n, &g, &map, &staged, stream, isa)
                                    }
                                }
                            }
                            .unwrap();
                            assert!(out
                                .iter()
                                .zip(&want)
                                .all(|(a, b)| a.to_bits() == b.to_bits()));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn no_arrival_keeps_the_own_value() {
        let (n, d) = (4, 100);
        let x = data(n, d);
        // only node 0 receives (from 1); everyone else keeps its value exactly
        let g = sample_graphs(n, 1, 0, 0, 0, GraphMode::Edges(vec![(1, 0)])).unwrap();
        let map = FragmentMap::contiguous(d, 1).unwrap();
        let mut out = vec![0f32; n * d];
        aggregate(&x, &mut out, n, &g, &map).unwrap();
        assert_eq!(&out[d..], &x[d..]);
        for c in 0..d {
            assert_eq!(out[c], (x[c] + x[d + c]) * 0.5);
        }
    }

    #[test]
    fn regular_gossip_preserves_the_mean_of_a_constant() {
        let (n, d) = (10, 64);
        let x = vec![3.5f32; n * d];
        let g = sample_graphs(n, 4, 3, 0, 0, GraphMode::ElOracle).unwrap();
        let map = FragmentMap::random(d, 4, 0, None).unwrap();
        let mut out = vec![0f32; n * d];
        aggregate(&x, &mut out, n, &g, &map).unwrap();
        assert!(out.iter().all(|&v| v == 3.5));
    }

    #[test]
    fn shape_mismatches_are_errors() {
        let g = sample_graphs(4, 2, 2, 0, 0, GraphMode::ElOracle).unwrap();
        let map = FragmentMap::contiguous(10, 2).unwrap();
        let x = vec![0f32; 40];
        let mut out = vec![0f32; 40];
        assert!(aggregate(&x, &mut out, 5, &g, &map).is_err());
        assert!(aggregate(&x[..39], &mut out[..39], 4, &g, &map).is_err());
        let map3 = FragmentMap::contiguous(10, 3).unwrap();
        assert!(aggregate(&x, &mut out, 4, &g, &map3)
            .unwrap_err()
            .message
            .contains("K=3"));
    }
}
