//! Benchmark-only probes (cargo feature `bench-probes`): what the kernel's speed is measured against.

use rayon::prelude::*;

use crate::aggregate::{average_panel_row, PANEL_WIDTH, STREAM_MIN_BYTES};
use crate::bail;
use crate::error::Result;
use crate::graphs::Digraph;
use crate::memory::HugeBuffer;
use crate::pool::pool;
use crate::simd;

/// Parallel copy of `src` into `dst` on the kernel's pool: the memory-bandwidth probe for benchmarks.
pub fn copy_into(src: &[f32], dst: &mut [f32]) -> Result<()> {
    if src.len() != dst.len() {
        bail!(
            "copy: src has {} values but dst has {}",
            src.len(),
            dst.len()
        );
    }
    const CHUNK: usize = 1 << 16;
    // The same store policy as the kernel, so the probe is the best copy this machine does.
    let stream = 4 * dst.len() >= STREAM_MIN_BYTES && simd::best_isa() >= simd::AVX2;
    pool()?.install(|| {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                if stream {
                    // SAFETY: `zip` pairs chunks of equal length (the slices are equally long), so
                    // both hold `d.len()` floats; `stream` implies that the CPU has AVX2.
                    unsafe { copy_streaming(s.as_ptr(), d.as_mut_ptr(), d.len()) };
                    simd::store_fence();
                } else {
                    d.copy_from_slice(s);
                }
            });
    });
    Ok(())
}

/// `dst[..len] = src[..len]` with non-temporal stores.
///
/// # Safety
///
/// `src` and `dst` are valid for `len` floats and do not overlap; on x86_64 the CPU has AVX2.
unsafe fn copy_streaming(src: *const f32, dst: *mut f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    copy_streaming_avx2(src, dst, len);
    #[cfg(not(target_arch = "x86_64"))]
    std::ptr::copy_nonoverlapping(src, dst, len);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_streaming_avx2(src: *const f32, dst: *mut f32, len: usize) {
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_stream_ps};
    let mut c = 0;
    while c < len && !(dst.add(c) as usize).is_multiple_of(32) {
        simd::stream_scalar(dst.add(c), *src.add(c));
        c += 1;
    }
    while c + 32 <= len {
        for q in 0..4 {
            _mm256_stream_ps(dst.add(c + 8 * q), _mm256_loadu_ps(src.add(c + 8 * q)));
        }
        c += 32;
    }
    while c < len {
        simd::stream_scalar(dst.add(c), *src.add(c));
        c += 1;
    }
}

/// Panels each thread of [`panel_ceiling`] averages in turn, as the packed path does with a tile's.
const CEILING_PANELS: usize = 4;

/// The packed path's panel averaging alone, on every thread of the kernel's pool at once: each
/// thread averages its own `CEILING_PANELS` panels of `graph.n_nodes()` rows (`PANEL_WIDTH` floats a
/// row, in L2 as far as they fit) with `graph`'s in-neighbours, `passes` times, with no packing and
/// no write-back. Returns the outputs averaged per second over all threads: what the kernel could
/// reach at this node count if the rest of its work cost nothing.
pub fn panel_ceiling(graph: &Digraph, passes: usize) -> Result<f64> {
    let n = graph.n_nodes();
    let panel_len = n * PANEL_WIDTH;
    let pool = pool()?;
    let isa = simd::best_isa();
    let start = std::time::Instant::now();
    let outputs: usize = pool
        .broadcast(|_| {
            let (mut panels, mut results) = (HugeBuffer::new(), HugeBuffer::new());
            panels.reserve_zeroed(CEILING_PANELS * panel_len);
            results.reserve_zeroed(CEILING_PANELS * panel_len);
            let (pp, rp) = (panels.as_mut_ptr(), results.as_mut_ptr());
            for pass in 0..passes {
                let p = pass % CEILING_PANELS;
                for i in 0..n {
                    // SAFETY: both buffers hold CEILING_PANELS panels of `n` rows; in-neighbour ids
                    // are below `n`; the ISA is this CPU's.
                    unsafe {
                        let (panel, dst) = (
                            pp.add(p * panel_len),
                            rp.add(p * panel_len + i * PANEL_WIDTH),
                        );
                        match isa {
                            simd::AVX512 => average_panel_row::<{ simd::AVX512 }>(
                                panel,
                                i,
                                graph.in_neighbors(i),
                                dst,
                            ),
                            simd::AVX2 => average_panel_row::<{ simd::AVX2 }>(
                                panel,
                                i,
                                graph.in_neighbors(i),
                                dst,
                            ),
                            _ => average_panel_row::<{ simd::PORTABLE }>(
                                panel,
                                i,
                                graph.in_neighbors(i),
                                dst,
                            ),
                        }
                    }
                }
            }
            passes * panel_len
        })
        .into_iter()
        .sum();
    Ok(outputs as f64 / start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_copy_is_exact() {
        let src: Vec<f32> = (0..STREAM_MIN_BYTES / 4 + 37).map(|v| v as f32).collect();
        // Offset by one float so that the head runs scalar up to the streams' alignment.
        let mut buf = vec![0f32; src.len() + 1];
        copy_into(&src, &mut buf[1..]).unwrap();
        assert_eq!(&buf[1..], &src[..]);
        assert!(copy_into(&src, &mut buf[2..]).is_err());
    }

    #[test]
    fn the_panel_ceiling_counts_every_thread_s_outputs() {
        let g = crate::graphs::sample_graphs(100, 1, 8, 0, 0, crate::graphs::GraphMode::ElOracle)
            .unwrap();
        let rate = panel_ceiling(&g.fragments()[0], 10).unwrap();
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
    }
}
