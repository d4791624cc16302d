//! Benchmark-only probes (cargo feature `bench-probes`): what the kernel's speed is measured against.

use rayon::prelude::*;

use crate::aggregate::{simd, STREAM_MIN_BYTES};
use crate::bail;
use crate::error::Result;
use crate::pool::pool;

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
}
