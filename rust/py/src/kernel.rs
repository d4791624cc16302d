//! The aggregation kernel: `check_aggregate` and `aggregate`, what they run on (`prefault`,
//! `check_memory`, `num_threads`, `tile_width`), and the benchmark probes (feature
//! `bench-probes`).

use mosaic_core as core;
use numpy::{PyArray2, PyArrayMethods};
use pyo3::prelude::*;

#[cfg(feature = "bench-probes")]
use crate::args::non_negative;
use crate::errors::{detached, internal_err, to_pyerr, type_err, value_err};
use crate::fragments::PyFragmentMap;
use crate::graphs::PyGraphs;
use crate::operands::Described;

/// Read both array arguments and run every check of the call (`core::check_aggregate`).
fn check<'py, 'g>(
    py: Python<'py>,
    params: &Bound<'py, PyAny>,
    out: Option<&Bound<'py, PyAny>>,
    graphs: &'g PyGraphs,
    fragments: &'g PyFragmentMap,
) -> PyResult<(Described<'py>, Option<Described<'py>>, core::Checked<'g>)> {
    let p = Described::read(py, "params", params)?;
    let o = out.map(|o| Described::read(py, "out", o)).transpose()?;
    let checked = core::check_aggregate(
        &p.operand(),
        o.as_ref().map(|o| o.operand()).as_ref(),
        &graphs.inner,
        &fragments.inner,
    )
    .map_err(|e| to_pyerr(py, e))?;
    Ok((p, o, checked))
}

/// Every check of `aggregate(params, graphs, fragments, out)` for arrays and tensors on any device,
/// without running it (the torch path for device tensors calls this first).
#[pyfunction]
#[pyo3(signature = (params, graphs, fragments, out=None))]
pub(crate) fn check_aggregate<'py>(
    py: Python<'py>,
    params: &Bound<'py, PyAny>,
    graphs: &PyGraphs,
    fragments: &PyFragmentMap,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<()> {
    check(py, params, out, graphs, fragments).map(|_| ())
}

/// Fragment-wise averaging of `params` into `out` (float32 (n_nodes, n_params), C-contiguous numpy
/// arrays or CPU tensors); a new numpy array when `out` is None. Returns `out`.
#[pyfunction]
#[pyo3(signature = (params, graphs, fragments, out=None))]
pub(crate) fn aggregate<'py>(
    py: Python<'py>,
    params: &Bound<'py, PyAny>,
    graphs: &PyGraphs,
    fragments: &PyFragmentMap,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (p, o, checked) = check(py, params, out, graphs, fragments)?;
    if p.device != "cpu" {
        return Err(value_err(
            py,
            format!(
                "params is on {}, but the Rust kernel reads host memory; \
                 mosaic_fast.aggregate sends device tensors to the torch path",
                p.device
            ),
        ));
    }
    let x = p.host_matrix(py)?;
    let y = match &o {
        Some(o) => o.host_matrix(py)?,
        // SAFETY: the array is uninitialised (like np.empty, and from numpy's allocator, which asks
        // for huge pages); the kernel writes every element before it is returned, and on an error
        // it is dropped unread.
        None => unsafe { PyArray2::<f32>::new(py, [checked.n_nodes(), checked.n_params()], false) },
    };
    let x_ro = x.try_readonly().map_err(|_| {
        value_err(
            py,
            "params is being written by another call; pass a buffer no call is writing".into(),
        )
    })?;
    let mut y_rw = y.try_readwrite().map_err(|_| {
        value_err(
            py,
            "out is read-only or in use by another call; pass a writeable buffer of its own".into(),
        )
    })?;
    let xs = x_ro
        .as_slice()
        .map_err(|e| internal_err(py, format!("checked params: {e}")))?;
    let ys = y_rw
        .as_slice_mut()
        .map_err(|e| internal_err(py, format!("checked out: {e}")))?;
    detached(py, move || checked.run(xs, ys))?;
    drop(y_rw);
    Ok(match out {
        Some(out) => out.clone(),
        None => y.into_any(),
    })
}

/// Parallel copy on the kernel's pool (memory-bandwidth probe for benchmarks; feature `bench-probes`).
#[cfg(feature = "bench-probes")]
#[pyfunction]
pub(crate) fn copy_into<'py>(
    py: Python<'py>,
    src: &Bound<'py, PyAny>,
    dst: &Bound<'py, PyAny>,
) -> PyResult<()> {
    let as_matrix = |name: &str, obj: &Bound<'py, PyAny>| {
        obj.downcast::<PyArray2<f32>>().cloned().map_err(|_| {
            type_err(
                py,
                format!("{name} must be a float32 numpy array of 2 dimensions"),
            )
        })
    };
    let (s, d) = (as_matrix("src", src)?, as_matrix("dst", dst)?);
    let s_ro = s
        .try_readonly()
        .map_err(|_| value_err(py, "src is being written elsewhere".into()))?;
    let mut d_rw = d
        .try_readwrite()
        .map_err(|_| value_err(py, "dst aliases src or is read-only".into()))?;
    let ss = s_ro
        .as_slice()
        .map_err(|_| type_err(py, "src must be C-contiguous".into()))?;
    let ds = d_rw
        .as_slice_mut()
        .map_err(|_| type_err(py, "dst must be C-contiguous".into()))?;
    detached(py, move || core::probes::copy_into(ss, ds))
}

/// Outputs per second of the packed path's panel averaging alone, on every thread of the pool at
/// once, with the in-neighbours of fragment 0 of `graphs` (benchmark ceiling; feature `bench-probes`).
#[cfg(feature = "bench-probes")]
#[pyfunction]
#[pyo3(signature = (graphs, passes))]
pub(crate) fn panel_ceiling(py: Python<'_>, graphs: &PyGraphs, passes: i64) -> PyResult<f64> {
    let passes = non_negative(py, "passes", passes)?.max(1) as usize;
    let graph = graphs.fragment(py, 0)?.clone();
    detached(py, move || core::probes::panel_ceiling(&graph, passes))
}

/// Touch every page of a fresh float32 numpy array on the kernel's pool (one zero per 4 KiB), so that
/// the first aggregate into it does not pay its page faults (used by `empty_params`).
#[pyfunction]
pub(crate) fn prefault<'py>(py: Python<'py>, array: &Bound<'py, PyAny>) -> PyResult<()> {
    let a = array.downcast::<PyArray2<f32>>().map_err(|_| {
        type_err(
            py,
            "prefault needs a float32 numpy array of 2 dimensions".into(),
        )
    })?;
    let mut rw = a.try_readwrite().map_err(|_| {
        value_err(
            py,
            "prefault needs a writeable buffer no call is using".into(),
        )
    })?;
    let buf = rw
        .as_slice_mut()
        .map_err(|_| type_err(py, "prefault needs a C-contiguous array".into()))?;
    detached(py, move || core::memory::prefault(buf))
}

/// One-line MosaicValueError naming `what` when `n_bytes` exceed the memory available now.
#[pyfunction]
pub(crate) fn check_memory(py: Python<'_>, n_bytes: u64, what: &str) -> PyResult<()> {
    core::memory::check_fits(n_bytes, what).map_err(|e| to_pyerr(py, e))
}

/// Number of threads of the kernel's pool (`MOSAIC_NUM_THREADS`, default: all cores).
#[pyfunction]
pub(crate) fn num_threads(py: Python<'_>) -> PyResult<usize> {
    detached(py, || core::pool::pool().map(|p| p.current_num_threads()))
}

/// Column-tile width the kernel uses for `n_nodes` rows.
#[pyfunction]
pub(crate) fn tile_width(n_nodes: usize) -> usize {
    core::tile_width(n_nodes)
}
