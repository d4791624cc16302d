//! Low-level SIMD helpers shared by the kernel, its probes and the graph samplers: which
//! instruction set the loops may use, prefetch hints, gathers and streaming stores. Every module
//! that needs them depends on this one, which depends on none.
//!
//! Safety, for every unsafe function here: each pointer is valid for every offset the function's doc
//! names (reads from sources, writes to `dst`, which overlaps no source), the AVX2 variants
//! (`ISA >= AVX2`, `STREAM = true`, `*_avx2`) run only where [`best_isa`] is at least `AVX2`, and
//! the AVX-512 ones (`ISA == AVX512`, `*_avx512`) only where it is `AVX512`.

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
