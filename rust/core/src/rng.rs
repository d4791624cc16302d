//! Counter-based randomness: every stream is derived from `(seed, round, fragment, purpose)`, so draws
//! never depend on thread count or call order.

/// SplitMix64 finaliser: a bijective 64-bit mixer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Purposes keep streams for different uses of the same `(seed, round, fragment)` apart.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub enum Stream {
    Graph = 1,
    StaticGraph = 2,
    FragmentMap = 3,
    Shatter = 4,
}

/// xoshiro256++ seeded through SplitMix64 from a key tuple. Small, fast, and fixed forever here, so
/// a seed gives the same graphs in every release (unlike generators from external crates).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn from_key(seed: u64, round: u64, fragment: u64, stream: Stream) -> Self {
        let mut h = mix64(seed);
        h = mix64(h ^ round.wrapping_mul(0xA24B_AED4_963E_E407));
        h = mix64(h ^ fragment.wrapping_mul(0x9FB2_1C65_1E98_DF25));
        h = mix64(h ^ (stream as u64));
        let mut s = [0u64; 4];
        let mut state = h;
        for word in &mut s {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *word = mix64(state);
        }
        Self { s }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = (self.s[0].wrapping_add(self.s[3]))
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform integer in `0..bound` (Lemire's unbiased multiply-shift). `bound` must be > 0.
    #[inline]
    pub fn below(&mut self, bound: usize) -> usize {
        debug_assert!(bound > 0);
        let bound = bound as u64;
        let mut m = (self.next_u64() as u128) * (bound as u128);
        // The rejection threshold `2^64 mod bound` is below `bound`, so the division that computes
        // it is needed only when the low half is (rarely) below `bound`; same draws either way.
        if (m as u64) < bound {
            let threshold = bound.wrapping_neg() % bound;
            while (m as u64) < threshold {
                m = (self.next_u64() as u128) * (bound as u128);
            }
        }
        (m >> 64) as usize
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// `k` distinct values from `0..n` (Floyd's algorithm), in draw order.
    pub fn sample_distinct(&mut self, n: usize, k: usize, out: &mut Vec<usize>) {
        out.clear();
        debug_assert!(k <= n);
        for j in (n - k)..n {
            let t = self.below(j + 1);
            if out.contains(&t) {
                out.push(j);
            } else {
                out.push(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u64> = {
            let mut r = Rng::from_key(1, 2, 3, Stream::Graph);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::from_key(1, 2, 3, Stream::Graph);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::from_key(1, 2, 4, Stream::Graph);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut r = Rng::from_key(7, 0, 0, Stream::Graph);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[r.below(7)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn sample_distinct_gives_distinct_values() {
        let mut r = Rng::from_key(3, 0, 0, Stream::Graph);
        let mut out = Vec::new();
        for _ in 0..100 {
            r.sample_distinct(10, 6, &mut out);
            let mut s = out.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 6);
            assert!(s.iter().all(|&v| v < 10));
        }
    }
}
