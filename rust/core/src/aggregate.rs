//! Fragment-wise averaging of all nodes at once.
//!
//! For receiver `i` and coordinate `c` of fragment `k`:
//! `out[i, c] = (x[i, c] + sum_{j in In_k(i), ascending} x[j, c]) * (1 / (1 + |In_k(i)|))`,
//! accumulated left to right in f32 and scaled once, so the result is bit-identical whatever the
//! thread count (and equal to the obvious numpy loop that adds in the same order).
//!
//! The kernel works on column tiles: an `n x w` tile of `x` stays in cache while every receiver's
//! average is formed from it, so `x` is read from memory once and `out` written once, whatever the
//! degree and `K`. Tiles whose coordinates alternate between fragments (coordinate-level random
//! maps) are first gathered into fragment order, averaged in that order, and scattered back.

use rayon::prelude::*;

use crate::bail;
use crate::error::Result;
use crate::fragments::{FragmentMap, Tile, PAD};
use crate::graphs::{Digraph, Graphs};
use crate::pool::pool;

/// Bytes of `x` one tile may occupy. Measured on Zen 3 (512 KiB L2, 32 MiB L3): 512 KiB tiles beat
/// 128 KiB ones by ~10% (fewer tile switches; the next tile is prefetched while this one is in use).
const TILE_BYTES: usize = 512 * 1024;

/// Column-tile width for `n` rows: a multiple of 64 floats, between 64 and 16384.
pub fn tile_width(n_nodes: usize) -> usize {
    let w = TILE_BYTES / (4 * n_nodes.max(1));
    (w / 64 * 64).clamp(64, 16384)
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

pub fn check_shapes(
    n_nodes: usize,
    n_params: usize,
    graphs: &Graphs,
    map: &FragmentMap,
) -> Result<()> {
    if graphs.n_nodes != n_nodes {
        bail!(
            "params has {n_nodes} rows but the graphs are for n_nodes={}",
            graphs.n_nodes
        );
    }
    if map.n_params() != n_params {
        bail!(
            "params has {n_params} columns but the fragment map is for n_params={}",
            map.n_params()
        );
    }
    if map.n_fragments() != graphs.n_fragments() {
        bail!(
            "the fragment map has K={} fragments but the graphs have K={}",
            map.n_fragments(),
            graphs.n_fragments()
        );
    }
    Ok(())
}

/// Average `x` (row-major `n_nodes x n_params`) into `out` (same shape, not overlapping `x`).
pub fn aggregate(
    x: &[f32],
    out: &mut [f32],
    n_nodes: usize,
    graphs: &Graphs,
    map: &FragmentMap,
) -> Result<()> {
    let n_params = map.n_params();
    if x.len() != n_nodes * n_params || out.len() != x.len() {
        bail!(
            "params has {} values and out has {}, expected n_nodes*n_params = {n_nodes}*{n_params}",
            x.len(),
            out.len()
        );
    }
    check_shapes(n_nodes, n_params, graphs, map)?;
    let width = tile_width(n_nodes);
    let plan = map.plan(width);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let pool = pool()?;
    pool.install(|| {
        plan.tiles.par_iter().enumerate().for_each_init(
            || {
                // Gathered tiles hold up to `width` columns plus the padding of every fragment group.
                let slots = width + map.n_fragments().min(width) * PAD as usize;
                (vec![0f32; n_nodes * slots], vec![0f32; slots])
            },
            |(gathered, row), (t, tile)| {
                let ptr = out_ptr;
                // SAFETY: tiles cover disjoint column ranges, so no two tasks write the same element,
                // and every index stays inside the n_nodes x n_params buffers checked above.
                let next = plan.tiles.get(t + 1).map(|nt| (nt.col_start, nt.col_end));
                unsafe {
                    average_tile(
                        x,
                        ptr.0,
                        n_nodes,
                        n_params,
                        &graphs.fragments,
                        tile,
                        next,
                        gathered,
                        row,
                    )
                }
            },
        );
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
unsafe fn average_tile(
    x: &[f32],
    out: *mut f32,
    n: usize,
    d: usize,
    graphs: &[Digraph],
    tile: &Tile,
    next: Option<(usize, usize)>,
    gathered: &mut [f32],
    row: &mut [f32],
) {
    // Receiver i prefetches row i of the next tile (usually this thread's next task), so its memory
    // reads overlap this tile's arithmetic instead of stalling the next tile's first pass.
    let prefetch = |i: usize| {
        if let Some((a, b)) = next {
            prefetch_range(x.as_ptr().add(i * d + a), b - a);
        }
    };
    let c0 = tile.col_start;
    let xp = x.as_ptr();
    match &tile.perm {
        None => {
            for i in 0..n {
                prefetch(i);
                for seg in &tile.segments {
                    let nb = graphs[seg.fragment as usize].in_neighbors(i);
                    let off = c0 + seg.start as usize;
                    let seg_len = (seg.end - seg.start) as usize;
                    average_rows(xp, d, i, nb, off, seg_len, out.add(i * d + off));
                }
            }
        }
        Some(g) => {
            let w = row.len();
            let gp = gathered.as_mut_ptr();
            for j in 0..n {
                gather(xp.add(j * d + c0), &g.perm, gp.add(j * w));
            }
            let rp = row.as_mut_ptr();
            for i in 0..n {
                prefetch(i);
                for seg in &tile.segments {
                    let nb = graphs[seg.fragment as usize].in_neighbors(i);
                    let start = seg.start as usize;
                    let padded_len = (seg.end - seg.start).div_ceil(PAD) as usize * PAD as usize;
                    average_rows(gp, w, i, nb, start, padded_len, rp.add(start));
                }
                // Read the results back in column order: a gather too, so stores stay sequential.
                gather(rp, &g.inverse, out.add(i * d + c0));
            }
        }
    }
}

/// Hint the cache to load `len` floats from `ptr` (one hint per 64-byte line).
#[inline(always)]
unsafe fn prefetch_range(ptr: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut off = 0;
        while off < len {
            _mm_prefetch::<_MM_HINT_T0>(ptr.add(off) as *const i8);
            off += 16;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, len);
}

/// `dst[p] = src[idx[p]]` for every `p`.
#[inline(always)]
unsafe fn gather(src: *const f32, idx: &[i32], dst: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return gather_avx2(src, idx, dst);
        }
    }
    for (p, &i) in idx.iter().enumerate() {
        *dst.add(p) = *src.add(i as usize);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gather_avx2(src: *const f32, idx: &[i32], dst: *mut f32) {
    use std::arch::x86_64::{__m256i, _mm256_i32gather_ps, _mm256_loadu_si256, _mm256_storeu_ps};
    let mut p = 0;
    while p + 8 <= idx.len() {
        let lanes = _mm256_loadu_si256(idx.as_ptr().add(p) as *const __m256i);
        _mm256_storeu_ps(dst.add(p), _mm256_i32gather_ps::<4>(src, lanes));
        p += 8;
    }
    while p < idx.len() {
        *dst.add(p) = *src.add(*idx.get_unchecked(p) as usize);
        p += 1;
    }
}

/// `dst[c] = (row_own[c] + sum_j row_j[c]) * inv` for `c in off..off+len`, rows `stride` apart.
#[inline(always)]
unsafe fn average_rows(
    base: *const f32,
    stride: usize,
    own: usize,
    nb: &[u32],
    off: usize,
    len: usize,
    dst: *mut f32,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return average_rows_avx2(base, stride, own, nb, off, len, dst);
        }
    }
    average_rows_generic(base, stride, own, nb, off, len, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn average_rows_avx2(
    base: *const f32,
    stride: usize,
    own: usize,
    nb: &[u32],
    off: usize,
    len: usize,
    dst: *mut f32,
) {
    average_rows_generic(base, stride, own, nb, off, len, dst)
}

#[inline(always)]
unsafe fn average_rows_generic(
    base: *const f32,
    stride: usize,
    own: usize,
    nb: &[u32],
    off: usize,
    len: usize,
    dst: *mut f32,
) {
    let inv = 1.0f32 / (1 + nb.len()) as f32;
    let mut c = 0;
    // Four AVX2 registers of accumulators while they fit, then one, then scalars.
    while c + 32 <= len {
        average_chunk::<32>(base, stride, own, nb, off + c, dst.add(c), inv);
        c += 32;
    }
    while c + 8 <= len {
        average_chunk::<8>(base, stride, own, nb, off + c, dst.add(c), inv);
        c += 8;
    }
    while c < len {
        average_chunk::<1>(base, stride, own, nb, off + c, dst.add(c), inv);
        c += 1;
    }
}

/// `L` consecutive outputs, summed in registers across the own row and every in-neighbour row.
#[inline(always)]
unsafe fn average_chunk<const L: usize>(
    base: *const f32,
    stride: usize,
    own: usize,
    nb: &[u32],
    off: usize,
    dst: *mut f32,
    inv: f32,
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

/// Parallel copy of `src` into `dst` on the same pool: the memory-bandwidth probe for benchmarks.
pub fn copy_into(src: &[f32], dst: &mut [f32]) -> Result<()> {
    if src.len() != dst.len() {
        bail!(
            "copy: src has {} values but dst has {}",
            src.len(),
            dst.len()
        );
    }
    const CHUNK: usize = 1 << 16;
    let pool = pool()?;
    pool.install(|| {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| d.copy_from_slice(s));
    });
    Ok(())
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
                let nb = graphs.fragments[map.assignment()[c] as usize].in_neighbors(i);
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
        ] {
            let x = data(n, d);
            for map in [
                FragmentMap::contiguous(d, k).unwrap(),
                FragmentMap::random(d, k, 4, None).unwrap(),
                FragmentMap::blocks(d, k, 5, 4).unwrap(),
            ] {
                for mode in [GraphMode::ElOracle, GraphMode::ElLocal, GraphMode::Shatter] {
                    let g = sample_graphs(n, k, 2, 1, 2, mode).unwrap();
                    let mut out = vec![f32::NAN; n * d];
                    aggregate(&x, &mut out, n, &g, &map).unwrap();
                    let want = reference(&x, n, &g, &map);
                    assert!(out
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()));
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
