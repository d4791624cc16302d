//! The averaging loops under both tile walks: each output is the own row's value plus every
//! in-neighbour's, summed left to right in f32 and scaled once, with AVX2 and AVX-512 versions
//! picked at run time on x86_64.
//!
//! Safety, for every unsafe function here: as for [`crate::simd`]'s.

#[cfg(target_arch = "x86_64")]
use crate::simd::{stream_scalar, AVX2, AVX512};

/// `dst[c] = (row_own[c] + sum_j row_j[c]) * inv` for `c in off..off+len`, rows `stride` apart.
/// `STREAM` (AVX2 only) writes whole aligned vectors of `dst` with non-temporal stores.
#[inline(always)]
pub(super) unsafe fn average_rows<const STREAM: bool, const ISA: u8>(
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

/// `L` consecutive outputs, summed in registers across the own row and every in-neighbour row.
#[inline(always)]
pub(super) unsafe fn average_chunk<const L: usize>(
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
