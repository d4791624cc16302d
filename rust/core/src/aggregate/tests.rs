use super::plan::packed_plan;
use super::staged::aggregate_staged;
use super::tiles::aggregate_unchecked;
use super::{aggregate, tile_width};
use crate::fragments::{FragmentMap, MIN_MEAN_RUN};
use crate::graphs::{sample_graphs, GraphMode, Graphs};
use crate::simd;

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
