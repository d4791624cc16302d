//! `mosaic_fast._core`: thin pyo3 glue over `mosaic-core`. Each function extracts and checks its
//! arguments while attached to Python, runs one core call with the GIL released, and maps errors in
//! one place (`to_pyerr`). Users import `mosaic_fast`, not this module.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mosaic_core::{self as core, ErrorKind, FragmentMap, GraphMode, Graphs, MosaicError};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyType};

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

/// A state the checks should have made impossible: a bug here, reported as `MosaicInternalError`.
fn internal_err(py: Python<'_>, message: String) -> PyErr {
    raise(
        py,
        "MosaicInternalError",
        format!("internal error in mosaic_fast._core: {message}"),
    )
}

/// A non-negative integer argument of any size Python can write: a negative one or one beyond
/// 64 bits is one line naming the argument (pyo3's own conversion raises a bare OverflowError).
fn uint_arg(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(v) = value.extract::<u64>() {
        return Ok(v);
    }
    if value.extract::<i64>().is_ok() || value.lt(0).unwrap_or(false) {
        let text = value.str().map(|s| s.to_string()).unwrap_or_default();
        return Err(value_err(py, format!("{name}={text} must be non-negative")));
    }
    if value.is_instance_of::<pyo3::types::PyInt>() {
        let text = value.str().map(|s| s.to_string()).unwrap_or_default();
        return Err(value_err(
            py,
            format!("{name}={text} is too large: at most 2**64-1"),
        ));
    }
    let kind = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(type_err(py, format!("{name} must be an int, got {kind}")))
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
    fn contiguous(
        py: Python<'_>,
        n_params: &Bound<'_, PyAny>,
        n_fragments: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let (d, k) = (
            uint_arg(py, "n_params", n_params)?,
            uint_arg(py, "K", n_fragments)?,
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
        n_params: &Bound<'_, PyAny>,
        n_fragments: &Bound<'_, PyAny>,
        seed: &Bound<'_, PyAny>,
        layer_sizes: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<Self> {
        let (d, k) = (
            uint_arg(py, "n_params", n_params)?,
            uint_arg(py, "K", n_fragments)?,
        );
        let seed = uint_arg(py, "seed", seed)?;
        let layers = match layer_sizes {
            Some(sizes) => Some(
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, s)| uint_arg(py, &format!("layer_sizes[{i}]"), s).map(|v| v as usize))
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
        n_params: &Bound<'_, PyAny>,
        n_fragments: &Bound<'_, PyAny>,
        block_size: &Bound<'_, PyAny>,
        seed: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let (d, k) = (
            uint_arg(py, "n_params", n_params)?,
            uint_arg(py, "K", n_fragments)?,
        );
        let b = uint_arg(py, "block_size", block_size)?;
        let seed = uint_arg(py, "seed", seed)?;
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
        assignment: &Bound<'_, PyAny>,
        n_fragments: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let k = uint_arg(py, "K", n_fragments)?;
        let ids = assignment_ids(py, assignment)?;
        let ids = ids.readonly();
        let ids = ids
            .as_slice()
            .map_err(|e| internal_err(py, format!("assignment as int64: {e}")))?;
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
    /// Graphs given edge by edge: `edges[k]` is fragment k's integer array of shape (n_edges, 2),
    /// rows (src, dst): dst receives fragment k from src. Every edge is checked.
    #[staticmethod]
    #[pyo3(signature = (n_nodes, edges, *, round=0))]
    fn from_edges(
        py: Python<'_>,
        n_nodes: i64,
        edges: &Bound<'_, PyAny>,
        round: i64,
    ) -> PyResult<Self> {
        let n = non_negative(py, "n_nodes", n_nodes)? as usize;
        let round = non_negative(py, "round", round)?;
        let expected =
            "edges must be a sequence of edge lists, one per fragment, or an integer array \
                        of shape (K, n_edges, 2)";
        // A 2-D array is one edge list, not one per fragment: refused rather than read row by row.
        if let Ok(array) = edges.downcast::<PyUntypedArray>() {
            if array.ndim() != 3 {
                return Err(value_err(
                    py,
                    format!("{expected}, got shape {}", edges.getattr("shape")?.repr()?),
                ));
            }
        }
        if edges.is_instance_of::<PyString>() {
            return Err(type_err(py, format!("{expected}, got str")));
        }
        let items = edges
            .try_iter()
            .map_err(|_| type_err(py, format!("{expected}, got {}", type_name(edges))))?;
        let mut lists = Vec::new();
        for (k, item) in items.enumerate() {
            let context = format!("round {round}, fragment {k}: ");
            let array = as_numpy(py, &item?, &context)?;
            lists.push(edge_list(py, &array, &context)?);
        }
        let inner = detached(py, || Graphs::from_edge_lists(n, lists, round))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn n_nodes(&self) -> usize {
        self.inner.n_nodes()
    }

    #[getter]
    fn n_fragments(&self) -> usize {
        self.inner.n_fragments()
    }

    #[getter]
    fn degree(&self) -> usize {
        self.inner.degree()
    }

    #[getter]
    fn mode(&self) -> &'static str {
        self.inner.mode().name()
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed()
    }

    #[getter]
    fn round(&self) -> u64 {
        self.inner.round()
    }

    /// Dense row-stochastic W of fragment k: float64 (n_nodes, n_nodes), row = receiver.
    fn mixing_matrix<'py>(&self, py: Python<'py>, k: i64) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let k = non_negative(py, "k", k)?;
        let n = self.inner.n_nodes();
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
            .offsets()
            .iter()
            .map(|&v| v as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py);
        let sources = g
            .sources()
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
        Ok(g.out_degrees()
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
            self.inner.mode().name(),
            self.inner.n_nodes(),
            self.inner.n_fragments(),
            self.inner.degree(),
            self.inner.seed(),
            self.inner.round()
        )
    }
}

#[pyfunction]
#[pyo3(
    signature = (n_nodes, n_fragments, degree, *, seed=None, round=None, mode="el-oracle", edges=None),
    text_signature = "(n_nodes, n_fragments, degree, *, seed=0, round=0, mode='el-oracle', edges=None)"
)]
#[allow(clippy::too_many_arguments)]
fn sample_graphs(
    py: Python<'_>,
    n_nodes: &Bound<'_, PyAny>,
    n_fragments: &Bound<'_, PyAny>,
    degree: &Bound<'_, PyAny>,
    seed: Option<&Bound<'_, PyAny>>,
    round: Option<&Bound<'_, PyAny>>,
    mode: &str,
    edges: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyGraphs> {
    let n = uint_arg(py, "n_nodes", n_nodes)? as usize;
    let k = uint_arg(py, "K", n_fragments)? as usize;
    let s = uint_arg(py, "degree", degree)? as usize;
    let seed = seed.map_or(Ok(0), |v| uint_arg(py, "seed", v))?;
    let round = round.map_or(Ok(0), |v| uint_arg(py, "round", v))?;
    let edge_list = edges.map(|e| edge_list(py, e, "")).transpose()?;
    let mode = GraphMode::parse(mode, edge_list).map_err(|e| to_pyerr(py, e))?;
    let inner = detached(py, || core::sample_graphs(n, k, s, seed, round, mode))?;
    Ok(PyGraphs {
        inner: Arc::new(inner),
    })
}

/// A fragment id per coordinate: a one-dimensional integer numpy array, as a contiguous int64 copy
/// (made once per map, so any integer dtype and layout is accepted).
fn assignment_ids<'py>(
    py: Python<'py>,
    assignment: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let array = assignment.downcast::<PyUntypedArray>().map_err(|_| {
        type_err(
            py,
            format!(
                "assignment must be an integer numpy array of shape (n_params,), got {}",
                type_name(assignment)
            ),
        )
    })?;
    let dtype = array.dtype();
    if !matches!(dtype.kind(), b'i' | b'u') {
        return Err(type_err(
            py,
            format!("assignment must be integers, got dtype {}", dtype.str()?),
        ));
    }
    if array.ndim() != 1 {
        return Err(value_err(
            py,
            format!(
                "assignment must have shape (n_params,), got shape {}",
                assignment.getattr("shape")?.repr()?
            ),
        ));
    }
    let numpy = py.import("numpy")?;
    let copy = numpy.call_method1("ascontiguousarray", (assignment, "int64"))?;
    copy.downcast_into::<PyArray1<i64>>()
        .map_err(|e| internal_err(py, format!("assignment as int64: {e}")))
}

/// A user edge list: an integer numpy array of shape `(n_edges, 2)`, rows `(src, dst)` (empty: none).
/// `context` prefixes every message (which round and fragment the list is for).
fn edge_list(
    py: Python<'_>,
    edges: &Bound<'_, PyAny>,
    context: &str,
) -> PyResult<Vec<(usize, usize)>> {
    let array = edges.downcast::<PyUntypedArray>().map_err(|_| {
        type_err(
            py,
            format!(
                "{context}edges must be an integer array of shape (n_edges, 2), got {}",
                type_name(edges)
            ),
        )
    })?;
    if array.is_empty() {
        return Ok(Vec::new());
    }
    let dtype = array.dtype();
    if !matches!(dtype.kind(), b'i' | b'u') {
        return Err(type_err(
            py,
            format!(
                "{context}edges must be integers, got dtype {}",
                dtype.str()?
            ),
        ));
    }
    let shape = array.shape();
    if shape.len() != 2 || shape[1] != 2 {
        return Err(value_err(
            py,
            format!(
                "{context}edges must have shape (n_edges, 2), got shape {}",
                edges.getattr("shape")?.repr()?
            ),
        ));
    }
    // uint64 ids past i64::MAX would wrap to negative numbers here and be reported as such.
    let as_i64 = edges.call_method1("astype", ("int64",))?;
    let rows = as_i64
        .downcast::<PyArray2<i64>>()
        .map_err(|e| internal_err(py, format!("edges as int64: {e}")))?
        .readonly();
    let mut list = Vec::with_capacity(shape[0]);
    for (e, row) in rows.as_array().outer_iter().enumerate() {
        if row[0] < 0 || row[1] < 0 {
            return Err(value_err(
                py,
                format!(
                    "{context}edge {e} = ({}, {}) has a negative node id",
                    row[0], row[1]
                ),
            ));
        }
        list.push((row[0] as usize, row[1] as usize));
    }
    Ok(list)
}

/// `numpy.asarray(obj)`, a ragged nested list being a one-line value error.
fn as_numpy<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    context: &str,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("numpy")?
        .call_method1("asarray", (obj,))
        .map_err(|e| {
            value_err(
                py,
                format!("{context}edges must be an integer array of shape (n_edges, 2): {e}"),
            )
        })
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

const NUMPY_ARRAY: &str = "numpy array";
const TORCH_TENSOR: &str = "torch tensor";

/// What the glue reads off an array argument (numpy array or torch tensor, any device) for the
/// core's checks. Reading is all it does: every check is `core::check_aggregate`'s.
struct Described<'py> {
    object: Bound<'py, PyAny>,
    kind: &'static str,
    dtype: String,
    is_float32: bool,
    shape: Vec<usize>,
    c_contiguous: bool,
    address: usize,
    device: String,
}

impl<'py> Described<'py> {
    fn read(py: Python<'py>, name: &str, object: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(array) = object.downcast::<PyUntypedArray>() {
            let dtype = array.dtype();
            // SAFETY: `as_array_ptr` points at the live array object `object` holds a reference to;
            // reading its `data` field is what numpy's own PyArray_DATA macro does.
            let address = unsafe { (*array.as_array_ptr()).data } as usize;
            return Ok(Self {
                object: object.clone(),
                kind: NUMPY_ARRAY,
                is_float32: dtype.is_equiv_to(&numpy::dtype::<f32>(py)),
                dtype: dtype.str()?.to_string(),
                shape: array.shape().to_vec(),
                c_contiguous: array.is_c_contiguous(),
                address,
                device: "cpu".into(),
            });
        }
        if is_torch_tensor(py, object)? {
            let layout = object.getattr("layout")?.str()?.to_string();
            if layout != "torch.strided" {
                return Err(type_err(
                    py,
                    format!("{name} must be a dense tensor, got layout {layout}"),
                ));
            }
            let dtype = object.getattr("dtype")?.str()?.to_string();
            return Ok(Self {
                object: object.clone(),
                kind: TORCH_TENSOR,
                is_float32: dtype == "torch.float32",
                dtype,
                shape: object.getattr("shape")?.extract()?,
                c_contiguous: object.call_method0("is_contiguous")?.extract()?,
                address: object.call_method0("data_ptr")?.extract()?,
                device: object.getattr("device")?.str()?.to_string(),
            });
        }
        Err(type_err(
            py,
            format!(
                "{name} must be a numpy array or torch tensor of shape (n_nodes, n_params), got {}",
                type_name(object)
            ),
        ))
    }

    fn operand(&self) -> core::Operand<'_> {
        core::Operand {
            kind: self.kind,
            dtype: &self.dtype,
            is_float32: self.is_float32,
            shape: &self.shape,
            c_contiguous: self.c_contiguous,
            address: self.address,
            device: &self.device,
        }
    }

    /// The checked array as a float32 numpy matrix over the same memory (a CPU tensor's `.numpy()`).
    /// The view must start where the checks were told the data is: the overlap check of `params`
    /// and `out` is what makes their slices disjoint, so it must hold for the memory touched.
    fn host_matrix(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let array = if self.kind == NUMPY_ARRAY {
            self.object.clone()
        } else {
            self.object.call_method0("detach")?.call_method0("numpy")?
        };
        let matrix = array
            .downcast_into::<PyArray2<f32>>()
            .map_err(|e| internal_err(py, format!("a checked array is not float32 2-D: {e}")))?;
        if matrix.data() as usize != self.address || matrix.shape() != self.shape.as_slice() {
            return Err(internal_err(
                py,
                format!(
                    "the numpy view of a {} does not cover the memory that was checked",
                    self.kind
                ),
            ));
        }
        Ok(matrix)
    }
}

/// `isinstance(object, torch.Tensor)`, without importing torch: a tensor cannot exist without it.
fn is_torch_tensor(py: Python<'_>, object: &Bound<'_, PyAny>) -> PyResult<bool> {
    let modules = py.import("sys")?.getattr("modules")?;
    match modules.downcast::<PyDict>()?.get_item("torch")? {
        Some(torch) => object.is_instance(&torch.getattr("Tensor")?),
        None => Ok(false),
    }
}

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
fn check_aggregate<'py>(
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
fn aggregate<'py>(
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
fn copy_into<'py>(
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
fn panel_ceiling(py: Python<'_>, graphs: &PyGraphs, passes: i64) -> PyResult<f64> {
    let passes = non_negative(py, "passes", passes)?.max(1) as usize;
    let graph = graphs.fragment(py, 0)?.clone();
    detached(py, move || core::probes::panel_ceiling(&graph, passes))
}

/// Touch every page of a fresh float32 numpy array on the kernel's pool (one zero per 4 KiB), so that
/// the first aggregate into it does not pay its page faults (used by `empty_params`).
#[pyfunction]
fn prefault<'py>(py: Python<'py>, array: &Bound<'py, PyAny>) -> PyResult<()> {
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
fn check_memory(py: Python<'_>, n_bytes: u64, what: &str) -> PyResult<()> {
    core::memory::check_fits(n_bytes, what).map_err(|e| to_pyerr(py, e))
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

// ---- The network model: the transfer scheduler (`core::network`). ----

use mosaic_core::network;

/// Per-transfer arrays of a list of deliveries: id, src, dst (int64), bytes, ready, start,
/// last_byte, delivered (float64 seconds).
type DeliveryArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

/// A batch's (start, last_byte, delivered) float64 arrays, by row.
type ScheduleArrays<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

/// One delivery: (id, src, dst, bytes, ready, start, last_byte, delivered).
type DeliveryTuple = (u64, usize, usize, f64, f64, f64, f64, f64);

fn delivery_arrays(py: Python<'_>, deliveries: Vec<network::Delivery>) -> DeliveryArrays<'_> {
    let ints = |f: fn(&network::Delivery) -> i64| {
        deliveries
            .iter()
            .map(f)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    };
    let floats = |f: fn(&network::Delivery) -> f64| {
        deliveries
            .iter()
            .map(f)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    };
    (
        ints(|d| d.id as i64),
        ints(|d| d.src as i64),
        ints(|d| d.dst as i64),
        floats(|d| d.bytes),
        floats(|d| d.ready),
        floats(|d| d.start),
        floats(|d| d.last_byte),
        floats(|d| d.delivered),
    )
}

/// A contiguous 1-D numpy array argument as a slice (the Python wrapper makes it one).
fn slice_of<'a, T: numpy::Element>(
    py: Python<'_>,
    name: &str,
    array: &'a numpy::PyReadonlyArray1<'_, T>,
) -> PyResult<&'a [T]> {
    array
        .as_slice()
        .map_err(|_| type_err(py, format!("{name} must be a C-contiguous numpy array")))
}

/// `latency`: a float (every message), a float64 array of shape (n_nodes,) (access-link delays,
/// a message pays src's + dst's) or (n_nodes, n_nodes) (per ordered pair, row = sender).
fn latency_arg(
    py: Python<'_>,
    latency: &Bound<'_, PyAny>,
    n_nodes: usize,
) -> PyResult<network::Latency> {
    if let Ok(array) = latency.downcast::<numpy::PyArrayDyn<f64>>() {
        let values: Vec<f64> = array.readonly().as_array().iter().copied().collect();
        return match array.shape() {
            [] => Ok(network::Latency::Global(values[0])),
            [n] if *n == n_nodes => Ok(network::Latency::PerNode(values)),
            [a, b] if *a == n_nodes && *b == n_nodes => Ok(network::Latency::PerLink(values)),
            shape => Err(value_err(
                py,
                format!(
                    "latency must be a number, shape ({n_nodes},) or ({n_nodes}, {n_nodes}), got shape {shape:?}"
                ),
            )),
        };
    }
    latency
        .extract::<f64>()
        .map(network::Latency::Global)
        .map_err(|_| {
            type_err(
                py,
                format!(
                    "latency must be a number or a float64 numpy array, got {}",
                    type_name(latency)
                ),
            )
        })
}

fn node_arg(py: Python<'_>, name: &str, value: i64, n_nodes: usize) -> PyResult<usize> {
    if value < 0 {
        return Err(value_err(
            py,
            format!("{name}={value} is not a node id (the network has nodes 0..{n_nodes})"),
        ));
    }
    Ok(value as usize)
}

/// The columns of each kind of transfer in a scheduler's state dict, after the `{kind}_` prefix
/// (`queued_id`, ...): the shared ones, then the kind's own.
const STATE_ROWS: [&str; 6] = ["id", "src", "dst", "bytes", "ready", "start"];

/// A scheduler state's entries as numpy arrays and Python scalars, keyed as
/// `mosaic_fast.network_sim.NetworkScheduler.state_dict` names them.
fn state_to_dict<'py>(
    py: Python<'py>,
    state: network::SchedulerState,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let n = state.uplink.len();
    out.set_item("uplink", state.uplink.into_pyarray(py))?;
    out.set_item("downlink", state.downlink.into_pyarray(py))?;
    let (shape, values) = match state.latency {
        network::Latency::Global(s) => (vec![], vec![s]),
        network::Latency::PerNode(s) => (vec![n], s),
        network::Latency::PerLink(s) => (vec![n, n], s),
    };
    let latency = numpy::ndarray::ArrayD::from_shape_vec(shape, values)
        .map_err(|e| internal_err(py, format!("latency of the wrong size: {e}")))?;
    out.set_item("latency", latency.into_pyarray(py))?;
    out.set_item("fifo_per_sender", state.fifo_per_sender)?;
    out.set_item("fifo_per_pair", state.fifo_per_pair)?;
    out.set_item("bandwidth_sharing", state.sharing.name())?;
    out.set_item("now", state.now)?;
    out.set_item("next_id", state.next_id)?;
    for (kind, rows) in [
        ("queued", state.queued),
        ("active", state.active),
        ("in_flight", state.in_flight),
    ] {
        out.set_item(format!("{kind}_id"), rows.id.into_pyarray(py))?;
        out.set_item(format!("{kind}_src"), rows.src.into_pyarray(py))?;
        out.set_item(format!("{kind}_dst"), rows.dst.into_pyarray(py))?;
        out.set_item(format!("{kind}_bytes"), rows.bytes.into_pyarray(py))?;
        out.set_item(format!("{kind}_ready"), rows.ready.into_pyarray(py))?;
        out.set_item(format!("{kind}_start"), rows.start.into_pyarray(py))?;
    }
    for (name, column) in [
        ("active_remaining", state.active_remaining),
        ("active_rate", state.active_rate),
        ("active_updated", state.active_updated),
        ("in_flight_last_byte", state.in_flight_last_byte),
        ("in_flight_delivered", state.in_flight_delivered),
    ] {
        out.set_item(name, column.into_pyarray(py))?;
    }
    Ok(out)
}

/// Entry `name` of a state dict as a vector (a 1-D numpy array of `T`).
fn state_column<T: numpy::Element + Copy>(
    py: Python<'_>,
    state: &Bound<'_, PyDict>,
    name: &str,
) -> PyResult<Vec<T>> {
    let entry = state_entry(py, state, name)?;
    let array = entry
        .extract::<numpy::PyReadonlyArray1<'_, T>>()
        .map_err(|_| {
            type_err(
                py,
                format!(
                    "network state '{name}' must be a 1-D {} numpy array, got {}",
                    std::any::type_name::<T>(),
                    type_name(&entry)
                ),
            )
        })?;
    Ok(array.as_array().to_vec())
}

fn state_entry<'py>(
    py: Python<'_>,
    state: &Bound<'py, PyDict>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    state
        .get_item(name)?
        .ok_or_else(|| value_err(py, format!("network state lacks '{name}'")))
}

fn state_rows(
    py: Python<'_>,
    state: &Bound<'_, PyDict>,
    kind: &str,
) -> PyResult<network::TransferRows> {
    let [id, src, dst, bytes, ready, start] = STATE_ROWS.map(|column| format!("{kind}_{column}"));
    Ok(network::TransferRows {
        id: state_column(py, state, &id)?,
        src: state_column(py, state, &src)?,
        dst: state_column(py, state, &dst)?,
        bytes: state_column(py, state, &bytes)?,
        ready: state_column(py, state, &ready)?,
        start: state_column(py, state, &start)?,
    })
}

/// The scheduler state in a dict `state_to_dict` wrote (its entries' types checked, their values
/// left to the core's checks).
fn state_from_dict(py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<network::SchedulerState> {
    let uplink: Vec<f64> = state_column(py, state, "uplink")?;
    let latency = latency_arg(py, &state_entry(py, state, "latency")?, uplink.len())?;
    let wrong = |name: &str, what: &str, entry: &Bound<'_, PyAny>| {
        type_err(
            py,
            format!(
                "network state '{name}' must be {what}, got {}",
                type_name(entry)
            ),
        )
    };
    let fifo = state_entry(py, state, "fifo_per_sender")?;
    // Checkpoints written before these entries: no FIFO per pair, min-share links.
    let per_pair = match state.get_item("fifo_per_pair")? {
        Some(entry) => entry
            .extract::<bool>()
            .map_err(|_| wrong("fifo_per_pair", "a bool", &entry))?,
        None => false,
    };
    let sharing = match state.get_item("bandwidth_sharing")? {
        Some(entry) => {
            let name = entry
                .extract::<String>()
                .map_err(|_| wrong("bandwidth_sharing", "a str", &entry))?;
            network::Sharing::from_name(&name).map_err(|e| {
                value_err(
                    py,
                    format!("network state 'bandwidth_sharing': {}", e.message),
                )
            })?
        }
        None => network::Sharing::MinShare,
    };
    let now = state_entry(py, state, "now")?;
    let next_id = state_entry(py, state, "next_id")?;
    Ok(network::SchedulerState {
        downlink: state_column(py, state, "downlink")?,
        uplink,
        latency,
        fifo_per_sender: fifo
            .extract::<bool>()
            .map_err(|_| wrong("fifo_per_sender", "a bool", &fifo))?,
        fifo_per_pair: per_pair,
        sharing,
        now: now
            .extract::<f64>()
            .map_err(|_| wrong("now", "a float", &now))?,
        next_id: next_id
            .extract::<u64>()
            .map_err(|_| wrong("next_id", "a non-negative int", &next_id))?,
        queued: state_rows(py, state, "queued")?,
        active: state_rows(py, state, "active")?,
        active_remaining: state_column(py, state, "active_remaining")?,
        active_rate: state_column(py, state, "active_rate")?,
        active_updated: state_column(py, state, "active_updated")?,
        in_flight: state_rows(py, state, "in_flight")?,
        in_flight_last_byte: state_column(py, state, "in_flight_last_byte")?,
        in_flight_delivered: state_column(py, state, "in_flight_delivered")?,
    })
}

/// The network model's transfer scheduler: fair up/downlink sharing plus latency (see
/// `mosaic_fast.network_sim`).
/// Cancelled transfers: their ids and the bytes each had sent.
type Cancelled<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>);

#[pyclass(name = "NetworkScheduler", module = "mosaic_fast._core")]
struct PyNetworkScheduler {
    inner: network::Scheduler,
}

#[pymethods]
impl PyNetworkScheduler {
    #[new]
    #[pyo3(signature = (uplink, downlink, latency, *, fifo_per_sender=false, fifo_per_pair=false, bandwidth_sharing="max-min"))]
    fn new(
        py: Python<'_>,
        uplink: numpy::PyReadonlyArray1<'_, f64>,
        downlink: numpy::PyReadonlyArray1<'_, f64>,
        latency: &Bound<'_, PyAny>,
        fifo_per_sender: bool,
        fifo_per_pair: bool,
        bandwidth_sharing: &str,
    ) -> PyResult<Self> {
        let up = uplink.as_array().to_vec();
        let down = downlink.as_array().to_vec();
        let latency = latency_arg(py, latency, up.len())?;
        let (queueing, sharing) =
            scheduler_options(py, fifo_per_sender, fifo_per_pair, bandwidth_sharing)?;
        let inner = network::Scheduler::with_options(up, down, latency, queueing, sharing)
            .map_err(|e| to_pyerr(py, e))?;
        Ok(Self { inner })
    }

    #[pyo3(signature = (src, dst, bytes, ready_time=None))]
    fn submit(
        &mut self,
        py: Python<'_>,
        src: i64,
        dst: i64,
        bytes: f64,
        ready_time: Option<f64>,
    ) -> PyResult<u64> {
        let n = self.inner.n_nodes();
        let (s, d) = (node_arg(py, "src", src, n)?, node_arg(py, "dst", dst, n)?);
        let ready = ready_time.unwrap_or(self.inner.now());
        self.inner
            .submit(s, d, bytes, ready)
            .map_err(|e| to_pyerr(py, e))
    }

    fn submit_many<'py>(
        &mut self,
        py: Python<'py>,
        src: numpy::PyReadonlyArray1<'py, i64>,
        dst: numpy::PyReadonlyArray1<'py, i64>,
        bytes: numpy::PyReadonlyArray1<'py, f64>,
        ready_time: numpy::PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let (s, d) = (slice_of(py, "src", &src)?, slice_of(py, "dst", &dst)?);
        let (b, r) = (
            slice_of(py, "bytes", &bytes)?,
            slice_of(py, "ready_time", &ready_time)?,
        );
        let inner = &mut self.inner;
        let first = detached(py, move || inner.submit_many(s, d, b, r))? as i64;
        Ok((first..first + s.len() as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    #[pyo3(signature = (until=None))]
    fn next_delivery(
        &mut self,
        py: Python<'_>,
        until: Option<f64>,
    ) -> PyResult<Option<DeliveryTuple>> {
        let inner = &mut self.inner;
        let next = detached(py, move || inner.next_delivery(until))?;
        Ok(next.map(|d| {
            (
                d.id,
                d.src,
                d.dst,
                d.bytes,
                d.ready,
                d.start,
                d.last_byte,
                d.delivered,
            )
        }))
    }

    fn run_until<'py>(&mut self, py: Python<'py>, until: f64) -> PyResult<DeliveryArrays<'py>> {
        let inner = &mut self.inner;
        let deliveries = detached(py, move || inner.advance_until(until))?;
        Ok(delivery_arrays(py, deliveries))
    }

    fn run<'py>(&mut self, py: Python<'py>) -> PyResult<DeliveryArrays<'py>> {
        let inner = &mut self.inner;
        let deliveries = detached(py, move || inner.run())?;
        Ok(delivery_arrays(py, deliveries))
    }

    fn cancel_queued<'py>(
        &mut self,
        py: Python<'py>,
        src: i64,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let s = node_arg(py, "src", src, self.inner.n_nodes())?;
        let ids = self.inner.cancel_queued(s).map_err(|e| to_pyerr(py, e))?;
        Ok(ids
            .into_iter()
            .map(|id| id as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    /// Cancel every transfer of `src` whose last byte has not left: (ids ascending, bytes sent).
    fn cancel_unsent<'py>(&mut self, py: Python<'py>, src: i64) -> PyResult<Cancelled<'py>> {
        let s = node_arg(py, "src", src, self.inner.n_nodes())?;
        let (ids, sent) = self.inner.cancel_unsent(s).map_err(|e| to_pyerr(py, e))?;
        Ok((
            ids.into_iter()
                .map(|id| id as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py),
            sent.into_pyarray(py),
        ))
    }

    /// Everything that determines this scheduler's future, as numpy arrays and Python scalars.
    fn export_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        state_to_dict(py, self.inner.export_state())
    }

    /// A scheduler restored from `export_state`'s dict; every entry is checked first.
    #[staticmethod]
    fn from_state(py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<Self> {
        let state = state_from_dict(py, state)?;
        let inner = detached(py, move || network::Scheduler::from_state(state))?;
        Ok(Self { inner })
    }

    fn queued_from(&self, py: Python<'_>, src: i64) -> PyResult<usize> {
        let s = node_arg(py, "src", src, self.inner.n_nodes())?;
        self.inner.queued_from(s).map_err(|e| to_pyerr(py, e))
    }

    #[getter]
    fn now(&self) -> f64 {
        self.inner.now()
    }

    #[getter]
    fn n_nodes(&self) -> usize {
        self.inner.n_nodes()
    }

    #[getter]
    fn fifo_per_sender(&self) -> bool {
        self.inner.fifo_per_sender()
    }

    #[getter]
    fn fifo_per_pair(&self) -> bool {
        self.inner.queueing() == network::Queueing::PerPair
    }

    #[getter]
    fn bandwidth_sharing(&self) -> &'static str {
        self.inner.sharing().name()
    }

    #[getter]
    fn n_queued(&self) -> usize {
        self.inner.n_queued()
    }

    #[getter]
    fn n_active(&self) -> usize {
        self.inner.n_active()
    }

    #[getter]
    fn n_in_flight(&self) -> usize {
        self.inner.n_in_flight()
    }

    #[getter]
    fn next_id(&self) -> u64 {
        self.inner.next_id()
    }

    fn __repr__(&self) -> String {
        format!(
            "NetworkScheduler(n_nodes={}, queueing={:?}, bandwidth_sharing={:?}, now={}, queued={}, active={}, in_flight={})",
            self.inner.n_nodes(),
            self.inner.queueing(),
            self.inner.sharing().name(),
            self.inner.now(),
            self.inner.n_queued(),
            self.inner.n_active(),
            self.inner.n_in_flight()
        )
    }
}

/// A whole batch of transfers scheduled at once, GIL released: (start, last_byte, delivered), by row.
#[pyfunction]
#[pyo3(signature = (uplink, downlink, latency, src, dst, bytes, ready_time, *, fifo_per_sender=false, fifo_per_pair=false, bandwidth_sharing="max-min"))]
#[allow(clippy::too_many_arguments)]
fn schedule_transfers<'py>(
    py: Python<'py>,
    uplink: numpy::PyReadonlyArray1<'py, f64>,
    downlink: numpy::PyReadonlyArray1<'py, f64>,
    latency: &Bound<'py, PyAny>,
    src: numpy::PyReadonlyArray1<'py, i64>,
    dst: numpy::PyReadonlyArray1<'py, i64>,
    bytes: numpy::PyReadonlyArray1<'py, f64>,
    ready_time: numpy::PyReadonlyArray1<'py, f64>,
    fifo_per_sender: bool,
    fifo_per_pair: bool,
    bandwidth_sharing: &str,
) -> PyResult<ScheduleArrays<'py>> {
    let up = uplink.as_array().to_vec();
    let down = downlink.as_array().to_vec();
    let latency = latency_arg(py, latency, up.len())?;
    let (s, d) = (slice_of(py, "src", &src)?, slice_of(py, "dst", &dst)?);
    let (b, r) = (
        slice_of(py, "bytes", &bytes)?,
        slice_of(py, "ready_time", &ready_time)?,
    );
    let (queueing, sharing) =
        scheduler_options(py, fifo_per_sender, fifo_per_pair, bandwidth_sharing)?;
    let scheduler = network::Scheduler::with_options(up, down, latency, queueing, sharing)
        .map_err(|e| to_pyerr(py, e))?;
    let out = detached(py, move || scheduler.schedule_batch(s, d, b, r))?;
    Ok((
        out.start.into_pyarray(py),
        out.last_byte.into_pyarray(py),
        out.delivered.into_pyarray(py),
    ))
}

/// The scheduler's queueing and sharing from the keyword arguments.
fn scheduler_options(
    py: Python<'_>,
    fifo_per_sender: bool,
    fifo_per_pair: bool,
    bandwidth_sharing: &str,
) -> PyResult<(network::Queueing, network::Sharing)> {
    let queueing =
        match (fifo_per_sender, fifo_per_pair) {
            (false, false) => network::Queueing::Concurrent,
            (true, false) => network::Queueing::PerSender,
            (false, true) => network::Queueing::PerPair,
            (true, true) => return Err(value_err(
                py,
                "fifo_per_sender and fifo_per_pair are exclusive: one queue per sender or per pair"
                    .to_string(),
            )),
        };
    let sharing = network::Sharing::from_name(bandwidth_sharing).map_err(|e| to_pyerr(py, e))?;
    Ok((queueing, sharing))
}

fn add_network(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyNetworkScheduler>()?;
    m.add_function(wrap_pyfunction!(schedule_transfers, m)?)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFragmentMap>()?;
    m.add_class::<PyGraphs>()?;
    m.add_function(wrap_pyfunction!(sample_graphs, m)?)?;
    m.add_function(wrap_pyfunction!(check_aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate, m)?)?;
    #[cfg(feature = "bench-probes")]
    m.add_function(wrap_pyfunction!(copy_into, m)?)?;
    #[cfg(feature = "bench-probes")]
    m.add_function(wrap_pyfunction!(panel_ceiling, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(prefault, m)?)?;
    m.add_function(wrap_pyfunction!(check_memory, m)?)?;
    m.add_function(wrap_pyfunction!(tile_width, m)?)?;
    add_network(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
