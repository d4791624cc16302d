//! `Graphs` and `sample_graphs`: one round's gossip graphs, one per fragment, sampled or given
//! edge by edge.

use std::sync::Arc;

use mosaic_core::{self as core, GraphMode, Graphs};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::args::{non_negative, type_name, uint_arg};
use crate::errors::{detached, internal_err, to_pyerr, type_err, value_err};
use crate::fragments::PyFragmentMap;

type IndexArrays<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>);

/// One round's gossip graphs, one per fragment.
#[pyclass(frozen, weakref, name = "Graphs", module = "mosaic_fast._core")]
pub(crate) struct PyGraphs {
    pub(crate) inner: Arc<Graphs>,
}

impl PyGraphs {
    pub(crate) fn fragment(&self, py: Python<'_>, k: i64) -> PyResult<&core::Digraph> {
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
pub(crate) fn sample_graphs(
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
