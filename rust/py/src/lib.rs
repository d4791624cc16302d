//! `mosaic_fast._core`: thin pyo3 glue over `mosaic-core`. Each function extracts and checks its
//! arguments while attached to Python, runs one core call with the GIL released, and maps errors in
//! one place (`to_pyerr`). Users import `mosaic_fast`, not this module.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mosaic_core::{self as core, ErrorKind, FragmentMap, GraphMode, Graphs, MosaicError};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyType};

type IndexArrays<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>);

/// Map a core error onto the `mosaic_fast.errors` hierarchy.
fn to_pyerr(py: Python<'_>, err: MosaicError) -> PyErr {
    let class_name = match err.kind {
        ErrorKind::Value => "MosaicValueError",
        ErrorKind::Type => "MosaicTypeError",
    };
    raise(py, class_name, err.message)
}

fn raise(py: Python<'_>, class_name: &str, message: String) -> PyErr {
    match py
        .import("mosaic_fast.errors")
        .and_then(|m| m.getattr(class_name))
    {
        Ok(cls) => match cls.downcast::<PyType>() {
            Ok(t) => PyErr::from_type(t.clone(), message),
            Err(_) => PyValueError::new_err(message),
        },
        Err(_) => PyValueError::new_err(message),
    }
}

/// Run a core call with the GIL released; a panic becomes `MosaicInternalError`, never a crash.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> core::Result<T> + Send) -> PyResult<T> {
    let result = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_pyerr(py, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(raise(
                py,
                "MosaicInternalError",
                format!("internal error in the Rust core: {what}"),
            ))
        }
    }
}

fn value_err(py: Python<'_>, message: String) -> PyErr {
    to_pyerr(py, MosaicError::value(message))
}

fn type_err(py: Python<'_>, message: String) -> PyErr {
    to_pyerr(py, MosaicError::type_error(message))
}

fn non_negative(py: Python<'_>, name: &str, value: i64) -> PyResult<u64> {
    if value < 0 {
        return Err(value_err(
            py,
            format!("{name}={value} must be non-negative"),
        ));
    }
    Ok(value as u64)
}

/// A fixed coordinate -> fragment map over a flat parameter vector.
#[pyclass(frozen, weakref, name = "FragmentMap", module = "mosaic_fast._core")]
struct PyFragmentMap {
    inner: Arc<FragmentMap>,
}

#[pymethods]
impl PyFragmentMap {
    #[staticmethod]
    fn contiguous(py: Python<'_>, n_params: i64, n_fragments: i64) -> PyResult<Self> {
        let (d, k) = (
            non_negative(py, "n_params", n_params)?,
            non_negative(py, "K", n_fragments)?,
        );
        let inner = detached(py, || FragmentMap::contiguous(d as usize, k as usize))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[staticmethod]
    #[pyo3(signature = (n_params, n_fragments, *, seed, layer_sizes=None))]
    fn random(
        py: Python<'_>,
        n_params: i64,
        n_fragments: i64,
        seed: i64,
        layer_sizes: Option<Vec<i64>>,
    ) -> PyResult<Self> {
        let (d, k) = (
            non_negative(py, "n_params", n_params)?,
            non_negative(py, "K", n_fragments)?,
        );
        let seed = non_negative(py, "seed", seed)?;
        let layers = match layer_sizes {
            Some(sizes) => Some(
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| {
                        non_negative(py, &format!("layer_sizes[{i}]"), s).map(|v| v as usize)
                    })
                    .collect::<PyResult<Vec<usize>>>()?,
            ),
            None => None,
        };
        let inner = detached(py, || {
            FragmentMap::random(d as usize, k as usize, seed, layers.as_deref())
        })?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[staticmethod]
    #[pyo3(signature = (n_params, n_fragments, *, block_size, seed))]
    fn blocks(
        py: Python<'_>,
        n_params: i64,
        n_fragments: i64,
        block_size: i64,
        seed: i64,
    ) -> PyResult<Self> {
        let (d, k) = (
            non_negative(py, "n_params", n_params)?,
            non_negative(py, "K", n_fragments)?,
        );
        let b = non_negative(py, "block_size", block_size)?;
        let seed = non_negative(py, "seed", seed)?;
        let inner = detached(py, || {
            FragmentMap::blocks(d as usize, k as usize, b as usize, seed)
        })?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[staticmethod]
    fn from_assignment(
        py: Python<'_>,
        assignment: PyReadonlyArray1<'_, i64>,
        n_fragments: i64,
    ) -> PyResult<Self> {
        let k = non_negative(py, "K", n_fragments)?;
        let ids = assignment
            .as_slice()
            .map_err(|_| type_err(py, "assignment must be C-contiguous".into()))?;
        let inner = detached(py, || FragmentMap::from_ids(ids, k as usize))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn n_params(&self) -> usize {
        self.inner.n_params()
    }

    #[getter]
    fn n_fragments(&self) -> usize {
        self.inner.n_fragments()
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind().name()
    }

    fn fragment_sizes<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner
            .sizes()
            .iter()
            .map(|&s| s as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    }

    fn assignment<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner
            .assignment()
            .iter()
            .map(|&k| k as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "FragmentMap(kind={:?}, n_params={}, n_fragments={})",
            self.inner.kind().name(),
            self.inner.n_params(),
            self.inner.n_fragments()
        )
    }
}

/// One round's gossip graphs, one per fragment.
#[pyclass(frozen, weakref, name = "Graphs", module = "mosaic_fast._core")]
struct PyGraphs {
    inner: Arc<Graphs>,
}

impl PyGraphs {
    fn fragment(&self, py: Python<'_>, k: i64) -> PyResult<&core::Digraph> {
        let k = non_negative(py, "k", k)?;
        self.inner.fragment(k as usize).map_err(|e| to_pyerr(py, e))
    }
}

#[pymethods]
impl PyGraphs {
    #[getter]
    fn n_nodes(&self) -> usize {
        self.inner.n_nodes
    }

    #[getter]
    fn n_fragments(&self) -> usize {
        self.inner.n_fragments()
    }

    #[getter]
    fn degree(&self) -> usize {
        self.inner.degree
    }

    #[getter]
    fn mode(&self) -> &'static str {
        self.inner.mode.name()
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed
    }

    #[getter]
    fn round(&self) -> u64 {
        self.inner.round
    }

    /// Dense row-stochastic W of fragment k: float64 (n_nodes, n_nodes), row = receiver.
    fn mixing_matrix<'py>(&self, py: Python<'py>, k: i64) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let k = non_negative(py, "k", k)?;
        let n = self.inner.n_nodes;
        let w = self
            .inner
            .mixing_matrix(k as usize)
            .map_err(|e| to_pyerr(py, e))?;
        w.into_pyarray(py).reshape([n, n])
    }

    /// In-neighbour CSR of fragment k: (offsets int64 (n+1,), sources int64 (nnz,)), sources ascending.
    fn in_csr<'py>(&self, py: Python<'py>, k: i64) -> PyResult<IndexArrays<'py>> {
        let g = self.fragment(py, k)?;
        let offsets = g
            .offsets
            .iter()
            .map(|&v| v as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py);
        let sources = g
            .sources
            .iter()
            .map(|&v| v as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py);
        Ok((offsets, sources))
    }

    /// In-neighbours of every node for fragment k: list of int64 arrays (ascending).
    fn in_neighbors<'py>(&self, py: Python<'py>, k: i64) -> PyResult<Bound<'py, PyList>> {
        let g = self.fragment(py, k)?;
        let lists = (0..g.n_nodes())
            .map(|i| {
                g.in_neighbors(i)
                    .iter()
                    .map(|&v| v as i64)
                    .collect::<Vec<_>>()
                    .into_pyarray(py)
            })
            .collect::<Vec<_>>();
        PyList::new(py, lists)
    }

    fn in_degrees<'py>(&self, py: Python<'py>, k: i64) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let g = self.fragment(py, k)?;
        Ok((0..g.n_nodes())
            .map(|i| g.in_neighbors(i).len() as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    fn out_degrees<'py>(&self, py: Python<'py>, k: i64) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let g = self.fragment(py, k)?;
        Ok(g.out_degree
            .iter()
            .map(|&v| v as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    /// Parameters each node sends this round: int64 (n_nodes,).
    fn sent_params<'py>(
        &self,
        py: Python<'py>,
        fragments: &PyFragmentMap,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let sent = self
            .inner
            .sent_params(&fragments.inner)
            .map_err(|e| to_pyerr(py, e))?;
        Ok(sent
            .into_iter()
            .map(|v| v as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    fn __repr__(&self) -> String {
        format!(
            "Graphs(mode={:?}, n_nodes={}, n_fragments={}, degree={}, seed={}, round={})",
            self.inner.mode.name(),
            self.inner.n_nodes,
            self.inner.n_fragments(),
            self.inner.degree,
            self.inner.seed,
            self.inner.round
        )
    }
}

#[pyfunction]
#[pyo3(signature = (n_nodes, n_fragments, degree, *, seed=0, round=0, mode="el-oracle", edges=None))]
#[allow(clippy::too_many_arguments)]
fn sample_graphs(
    py: Python<'_>,
    n_nodes: i64,
    n_fragments: i64,
    degree: i64,
    seed: i64,
    round: i64,
    mode: &str,
    edges: Option<PyReadonlyArray2<'_, i64>>,
) -> PyResult<PyGraphs> {
    let n = non_negative(py, "n_nodes", n_nodes)? as usize;
    let k = non_negative(py, "K", n_fragments)? as usize;
    let s = non_negative(py, "degree", degree)? as usize;
    let seed = non_negative(py, "seed", seed)?;
    let round = non_negative(py, "round", round)?;
    let edge_list = match edges {
        Some(arr) => {
            let shape = arr.shape().to_vec();
            if shape.len() != 2 || shape[1] != 2 {
                return Err(value_err(
                    py,
                    format!("edges must have shape (n_edges, 2), got {shape:?}"),
                ));
            }
            let view = arr.as_array();
            let mut list = Vec::with_capacity(shape[0]);
            for (e, row) in view.outer_iter().enumerate() {
                if row[0] < 0 || row[1] < 0 {
                    return Err(value_err(
                        py,
                        format!("edge {e} = ({}, {}) has a negative node id", row[0], row[1]),
                    ));
                }
                list.push((row[0] as usize, row[1] as usize));
            }
            Some(list)
        }
        None => None,
    };
    let mode = GraphMode::parse(mode, edge_list).map_err(|e| to_pyerr(py, e))?;
    let inner = detached(py, || core::sample_graphs(n, k, s, seed, round, mode))?;
    Ok(PyGraphs {
        inner: Arc::new(inner),
    })
}

fn float32_matrix<'a, 'py>(
    py: Python<'py>,
    name: &str,
    obj: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyArray2<f32>>> {
    let arr = obj.downcast::<PyArray2<f32>>().map_err(|_| {
        let desc = match obj.getattr("dtype").and_then(|d| d.str()) {
            Ok(dtype) => format!(
                "dtype {dtype}, ndim {}",
                obj.getattr("ndim")
                    .map(|v| v.to_string())
                    .unwrap_or("?".into())
            ),
            Err(_) => format!(
                "type {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or("?".into())
            ),
        };
        type_err(
            py,
            format!(
                "{name} must be a float32 numpy array of shape (n_nodes, n_params), got {desc}"
            ),
        )
    })?;
    if !arr.is_c_contiguous() {
        return Err(type_err(
            py,
            format!(
                "{name} must be C-contiguous (use np.ascontiguousarray once, outside the loop)"
            ),
        ));
    }
    // A float32 view at an odd byte offset (np.frombuffer(..., offset=1)) is legal numpy, but the
    // kernel reads whole floats.
    if !(arr.data() as usize).is_multiple_of(std::mem::align_of::<f32>()) {
        return Err(type_err(
            py,
            format!(
                "{name} is not aligned to 4 bytes (a view at an odd byte offset); \
                 copy it once with np.require({name}, requirements='CA')"
            ),
        ));
    }
    Ok(arr)
}

/// Fragment-wise averaging of `params` into `out` (both float32 (n_nodes, n_params), C-contiguous).
#[pyfunction]
fn aggregate_into(
    py: Python<'_>,
    params: &Bound<'_, PyAny>,
    graphs: &PyGraphs,
    fragments: &PyFragmentMap,
    out: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let x = float32_matrix(py, "params", params)?;
    let y = float32_matrix(py, "out", out)?;
    if x.shape() != y.shape() {
        return Err(value_err(
            py,
            format!(
                "out has shape {:?} but params has shape {:?}",
                y.shape(),
                x.shape()
            ),
        ));
    }
    let (n, d) = (x.shape()[0], x.shape()[1]);
    core::aggregate::check_shapes(n, d, &graphs.inner, &fragments.inner)
        .map_err(|e| to_pyerr(py, e))?;
    let x_ro = x
        .try_readonly()
        .map_err(|_| value_err(py, "params is being written elsewhere".into()))?;
    let mut y_rw = y.try_readwrite().map_err(|_| {
        value_err(
            py,
            "out aliases params (or is not writeable); pass a separate buffer".into(),
        )
    })?;
    let xs = x_ro
        .as_slice()
        .map_err(|_| type_err(py, "params must be C-contiguous".into()))?;
    let ys = y_rw
        .as_slice_mut()
        .map_err(|_| type_err(py, "out must be C-contiguous".into()))?;
    let (xa, ya) = (xs.as_ptr() as usize, ys.as_ptr() as usize);
    let bytes = std::mem::size_of_val(xs);
    if xa < ya + bytes && ya < xa + bytes && bytes > 0 {
        return Err(value_err(
            py,
            "out aliases params; pass a separate buffer".into(),
        ));
    }
    let (g, m) = (graphs.inner.clone(), fragments.inner.clone());
    detached(py, move || core::aggregate(xs, ys, n, &g, &m))
}

/// Parallel copy on the kernel's pool (memory-bandwidth probe for benchmarks).
#[pyfunction]
fn copy_into(py: Python<'_>, src: &Bound<'_, PyAny>, dst: &Bound<'_, PyAny>) -> PyResult<()> {
    let s = float32_matrix(py, "src", src)?;
    let d = float32_matrix(py, "dst", dst)?;
    let s_ro = s
        .try_readonly()
        .map_err(|_| value_err(py, "src is being written elsewhere".into()))?;
    let mut d_rw = d
        .try_readwrite()
        .map_err(|_| value_err(py, "dst aliases src".into()))?;
    let ss = s_ro
        .as_slice()
        .map_err(|_| type_err(py, "src must be C-contiguous".into()))?;
    let ds = d_rw
        .as_slice_mut()
        .map_err(|_| type_err(py, "dst must be C-contiguous".into()))?;
    detached(py, move || core::copy_into(ss, ds))
}

/// Number of threads of the kernel's pool (`MOSAIC_NUM_THREADS`, default: all cores).
#[pyfunction]
fn num_threads(py: Python<'_>) -> PyResult<usize> {
    detached(py, || core::pool::pool().map(|p| p.current_num_threads()))
}

/// Column-tile width the kernel uses for `n_nodes` rows.
#[pyfunction]
fn tile_width(n_nodes: usize) -> usize {
    core::tile_width(n_nodes)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFragmentMap>()?;
    m.add_class::<PyGraphs>()?;
    m.add_function(wrap_pyfunction!(sample_graphs, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_into, m)?)?;
    m.add_function(wrap_pyfunction!(copy_into, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(tile_width, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
