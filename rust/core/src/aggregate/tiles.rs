//! The walk over a plan's column tiles: tasks on the kernel's pool, each running the strip or the
//! packed walk over its tiles with the loops of one instruction set.

use rayon::prelude::*;

use super::kernel::{Kernel, SendPtr, LINE_FLOATS};
use super::packed::PACKED_TASKS_PER_THREAD;
use crate::error::Result;
use crate::fragments::{FragmentMap, Tile, TilePlan, PAD};
use crate::graphs::Graphs;
use crate::memory::HugeBuffer;
use crate::pool::pool;
use crate::simd;

thread_local! {
    /// Per-thread buffers of gathered tiles (the tile in fragment order, and its averages), kept
    /// between calls so that a call allocates nothing once warm.
    static SCRATCH: std::cell::RefCell<(HugeBuffer, HugeBuffer)> =
        const { std::cell::RefCell::new((HugeBuffer::new(), HugeBuffer::new())) };
}

/// The kernel after the shape checks. `stream` asks for non-temporal stores, which need AVX2; `isa`
/// is the widest instruction set the loops may use ([`simd::PORTABLE`], [`simd::AVX2`] or
/// [`simd::AVX512`]), lowered to what the CPU has (tests pass each to run every version).
/// `plan` is one of `map`'s and `packed` says whether it is walked by the packed path (both from
/// [`super::plan::kernel_walk`]; tests force the packed path with [`super::plan::packed_plan`]).
///
/// # Safety
///
/// `x` and `out` hold `n_nodes * map.n_params()` floats, `graphs` has `n_nodes` nodes and
/// `map.n_fragments()` fragments, and `plan` comes from `map`: the loops index the buffers with
/// raw pointers.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn aggregate_unchecked(
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

impl Kernel<'_> {
    /// Average one column tile; `STREAM` writes `out` with non-temporal stores. The ISA is chosen
    /// once per tile so that the inner loops inline into one function of that instruction set.
    ///
    /// # Safety
    ///
    /// `tile` is from the plan of the kernel's map (its columns lie in `0..d`), `x` and `out` hold
    /// `n * d` floats, no other task writes the tile's columns, and `isa` is at most what the CPU
    /// has. The other unsafe methods of `Kernel` (here and in `kernel`, `strips`, `packed`) are its
    /// parts and need the same.
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
}
