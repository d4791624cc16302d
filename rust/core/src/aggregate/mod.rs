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
//!
//! The modules follow the walks: `plan` picks one for a map and a node count; `tiles` runs a
//! plan's column tiles on the pool, each by the strip walk (`strips`) or the packed one
//! (`packed`); `staged` copies windows into fragment order and runs each as tiles. `kernel`
//! holds what every tile task shares, and `loops` the SIMD averaging loops under both walks.

mod kernel;
mod loops;
mod packed;
mod plan;
mod staged;
mod strips;
#[cfg(test)]
mod tests;
mod tiles;

#[cfg(feature = "bench-probes")]
pub(crate) use packed::average_panel_row;
pub use packed::PANEL_WIDTH;
pub use plan::{tile_width, PACKED_MIN_NODES, STAGED_MIN_NODES};

use crate::bail;
use crate::boundary::{check_shapes, Checked};
use crate::error::Result;
use crate::fragments::FragmentMap;
use crate::graphs::Graphs;
use crate::simd;
use plan::{kernel_walk, Walk};
use staged::aggregate_staged;
use tiles::aggregate_unchecked;

/// Outputs at least this large are written with non-temporal (streaming) stores: they would not stay
/// in cache anyway, and skipping the read-for-ownership of every output line roughly halves the
/// kernel's time at n=64, d=1e6 (measured on a 2-core Xeon: 84 -> 41 ms single-threaded).
/// Smaller outputs use ordinary stores so that the caller finds them in cache.
pub(crate) const STREAM_MIN_BYTES: usize = 16 << 20;

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
