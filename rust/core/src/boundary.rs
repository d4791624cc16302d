//! The aggregation kernel's input checks, all in one place.
//!
//! The binding describes each array argument (a numpy array or a torch tensor, on any device) as an
//! [`Operand`] and calls [`check_aggregate`] once per call, so a bad input gets the same message
//! whichever path would have served it. Everything the kernel's memory safety rests on is checked
//! here before any memory is touched: float32, two dimensions, C order, 4-byte alignment, shapes that
//! match the graphs and the fragment map, and an output that does not overlap the input.

use crate::error::{MosaicError, Result};
use crate::fragments::FragmentMap;
use crate::graphs::Graphs;

/// What the binding reads off an array argument before anything trusts it.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    /// "numpy array" or "torch tensor": `out` must be the same kind as `params`.
    pub kind: &'a str,
    /// The dtype as the caller's library spells it ("float64", "torch.float64").
    pub dtype: &'a str,
    pub is_float32: bool,
    pub shape: &'a [usize],
    /// Row-major with no gaps, so that the `shape.product()` floats from `address` are the array.
    pub c_contiguous: bool,
    /// Address of the first element (device memory for device tensors).
    pub address: usize,
    /// "cpu", "cuda:0", ...
    pub device: &'a str,
}

/// A call that passed the checks: `params` (and `out`) are `n_nodes x n_params` float32 buffers that
/// match the graphs and the fragment map. Only [`check_aggregate`] and [`check_shapes`] make one.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'g> {
    pub(crate) n_nodes: usize,
    pub(crate) n_params: usize,
    pub(crate) graphs: &'g Graphs,
    pub(crate) map: &'g FragmentMap,
}

impl Checked<'_> {
    pub fn n_nodes(&self) -> usize {
        self.n_nodes
    }

    pub fn n_params(&self) -> usize {
        self.n_params
    }
}

/// Every check of one aggregation call, in the order a user fixes them: `params` alone, `params`
/// against the graphs and the map, then `out` against `params`.
pub fn check_aggregate<'g>(
    params: &Operand<'_>,
    out: Option<&Operand<'_>>,
    graphs: &'g Graphs,
    map: &'g FragmentMap,
) -> Result<Checked<'g>> {
    check_matrix("params", params)?;
    let checked = check_shapes(params.shape[0], params.shape[1], graphs, map)?;
    if let Some(out) = out {
        if out.kind != params.kind {
            return Err(MosaicError::type_error(format!(
                "out must be a {} like params, got a {}",
                params.kind, out.kind
            )));
        }
        check_matrix("out", out)?;
        if out.device != params.device {
            return Err(MosaicError::value(format!(
                "out is on {} but params is on {}",
                out.device, params.device
            )));
        }
        if out.shape != params.shape {
            return Err(MosaicError::value(format!(
                "out has shape {} but params has shape {}",
                python_shape(out.shape),
                python_shape(params.shape)
            )));
        }
        let bytes = params.shape[0] * params.shape[1] * std::mem::size_of::<f32>();
        let (x, y) = (params.address, out.address);
        if bytes > 0 && x < y.saturating_add(bytes) && y < x.saturating_add(bytes) {
            return Err(MosaicError::value(
                "out aliases params; pass a separate buffer",
            ));
        }
    }
    Ok(checked)
}

/// `n_nodes x n_params` against the graphs and the fragment map.
pub fn check_shapes<'g>(
    n_nodes: usize,
    n_params: usize,
    graphs: &'g Graphs,
    map: &'g FragmentMap,
) -> Result<Checked<'g>> {
    if graphs.n_nodes() != n_nodes {
        return Err(MosaicError::value(format!(
            "params has {n_nodes} rows but the graphs are for n_nodes={}",
            graphs.n_nodes()
        )));
    }
    if map.n_params() != n_params {
        return Err(MosaicError::value(format!(
            "params has {n_params} columns but the fragment map is for n_params={}",
            map.n_params()
        )));
    }
    if map.n_fragments() != graphs.n_fragments() {
        return Err(MosaicError::value(format!(
            "the fragment map has K={} fragments but the graphs have K={}",
            map.n_fragments(),
            graphs.n_fragments()
        )));
    }
    Ok(Checked {
        n_nodes,
        n_params,
        graphs,
        map,
    })
}

fn check_matrix(name: &str, a: &Operand<'_>) -> Result<()> {
    if !a.is_float32 {
        return Err(MosaicError::type_error(format!(
            "{name} must have dtype float32, got {}",
            a.dtype
        )));
    }
    if a.shape.len() != 2 {
        return Err(MosaicError::value(format!(
            "{name} must have shape (n_nodes, n_params), got shape {}",
            python_shape(a.shape)
        )));
    }
    if !a.c_contiguous {
        return Err(MosaicError::type_error(format!(
            "{name} must be C-contiguous; got a strided view of shape {}",
            python_shape(a.shape)
        )));
    }
    // A float32 view at an odd byte offset (np.frombuffer(..., offset=1)) is legal numpy, but the
    // kernel reads whole floats.
    if !a.address.is_multiple_of(std::mem::align_of::<f32>()) {
        return Err(MosaicError::type_error(format!(
            "{name} is not aligned to 4 bytes (a view at an odd byte offset); copy it once, \
             outside the loop"
        )));
    }
    Ok(())
}

/// A shape as Python prints it: `(240,)`, `(6, 40)`.
fn python_shape(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", dims.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphs::{sample_graphs, GraphMode};

    fn operand(shape: &[usize], address: usize) -> Operand<'_> {
        Operand {
            kind: "numpy array",
            dtype: "float32",
            is_float32: true,
            shape,
            c_contiguous: true,
            address,
            device: "cpu",
        }
    }

    #[test]
    fn each_problem_gets_its_message() {
        let g = sample_graphs(4, 2, 2, 0, 0, GraphMode::ElOracle).unwrap();
        let map = FragmentMap::contiguous(10, 2).unwrap();
        let ok = operand(&[4, 10], 4096);
        assert!(check_aggregate(&ok, None, &g, &map).is_ok());
        let msg = |p: &Operand<'_>, o: Option<&Operand<'_>>| {
            check_aggregate(p, o, &g, &map).unwrap_err().message
        };
        let f64_op = Operand {
            dtype: "torch.float64",
            is_float32: false,
            ..ok
        };
        assert_eq!(
            msg(&f64_op, None),
            "params must have dtype float32, got torch.float64"
        );
        assert!(msg(&operand(&[40], 4096), None).contains("got shape (40,)"));
        let strided = Operand {
            c_contiguous: false,
            ..ok
        };
        assert!(msg(&strided, None).contains("C-contiguous"));
        assert!(msg(&operand(&[4, 10], 4097), None).contains("params is not aligned"));
        assert!(msg(&operand(&[5, 10], 4096), None).contains("5 rows"));
        let overlapping = operand(&[4, 10], 4096 + 4 * 39);
        assert!(msg(&ok, Some(&overlapping)).contains("aliases"));
        let adjacent = operand(&[4, 10], 4096 + 4 * 40);
        assert!(check_aggregate(&ok, Some(&adjacent), &g, &map).is_ok());
        let on_gpu = Operand {
            device: "cuda:0",
            ..adjacent
        };
        assert_eq!(
            msg(&ok, Some(&on_gpu)),
            "out is on cuda:0 but params is on cpu"
        );
        let tensor = Operand {
            kind: "torch tensor",
            ..adjacent
        };
        assert!(msg(&ok, Some(&tensor)).contains("numpy array like params"));
    }
}
