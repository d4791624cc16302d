//! Which walk the kernel takes for a map and a node count (strips of column tiles, packed tiles,
//! or windows staged in fragment order), and the widths each walk measured best with.

use std::sync::Arc;

use crate::fragments::{FragmentMap, StagedPlan, TilePlan, MIN_MEAN_RUN};

/// Bytes of `x` one tile may occupy: the tile, its gathered copy and its averages stay in L2 while
/// every receiver reads from them. Measured at n=64, d=1e6 on a 2-core Xeon (2 MiB L2): 256 KiB
/// beats 512 KiB for coordinate-level random maps (35 vs 43 ms) and ties for contiguous ones.
const TILE_BYTES: usize = 256 * 1024;

/// Narrowest tile: each row's part of a tile is read as one stream, and the hardware prefetchers
/// want long ones (n=256: 88 ms at 512 columns, 105 ms at 256).
const MIN_TILE_WIDTH: usize = 512;

/// From this many nodes on, column-run tiles take the packed path. Measured on the 2-core EPYC
/// (d=4e8/n, contiguous K=1, 2 threads, best of 5; strip walk vs packed with its pipelined
/// write-back): n=2,000 107 vs 127 ms, 2,500 98 vs 120, 3,000 135 vs 138, 3,500 180 vs 138,
/// 4,000 157 vs 127, 6,000 167 vs 142.
pub const PACKED_MIN_NODES: usize = 3000;

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
pub(super) const PACKED_GATHER_WIDTH: usize = 128;

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
pub(super) enum Walk {
    /// Column tiles of the map itself, strip by strip or (`packed`) packed into panels.
    Tiles { plan: Arc<TilePlan>, packed: bool },
    /// Windows staged in fragment order, each walked as the column runs of its own map.
    Staged(Arc<StagedPlan>),
}

/// The walk for `n_nodes` rows of `map`: packed tiles from `PACKED_MIN_NODES` on, staged windows
/// from `STAGED_MIN_NODES` on for maps whose packed tiles would be gathered, strips otherwise.
pub(super) fn kernel_walk(map: &FragmentMap, n_nodes: usize) -> Walk {
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
pub(super) fn packed_plan(map: &FragmentMap) -> Arc<TilePlan> {
    let runs = map.plan(PACKED_TILE_WIDTH, PACKED_MIN_MEAN_RUN);
    let gathered = runs.tiles.iter().filter(|t| t.perm.is_some()).count();
    if 2 * gathered > runs.tiles.len() {
        map.plan(PACKED_GATHER_WIDTH, PACKED_MIN_MEAN_RUN)
    } else {
        runs
    }
}
