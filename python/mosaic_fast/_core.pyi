"""Type stubs for the Rust extension ``mosaic_fast._core`` (kept in sync with rust/py/src/*.rs;
``python -m mypy.stubtest mosaic_fast._core`` in .ci/run compares them with the built module)."""

from collections.abc import Sequence
from typing import Any, TypeVar, final, overload

import numpy as np
import numpy.typing as npt

# The order in which rust/py/src/lib.rs registers them (pyo3 writes the runtime's __all__).
__all__ = [
    "FragmentMap",
    "Graphs",
    "sample_graphs",
    "check_aggregate",
    "aggregate",
    "copy_into",
    "panel_ceiling",
    "num_threads",
    "prefault",
    "check_memory",
    "tile_width",
    "NetworkScheduler",
    "schedule_transfers",
    "__version__",
]

__version__: str

@final
class FragmentMap:
    """A fixed coordinate -> fragment map over a flat parameter vector of ``n_params`` values."""

    @staticmethod
    def contiguous(n_params: int, n_fragments: int) -> FragmentMap: ...
    @staticmethod
    def random(
        n_params: int, n_fragments: int, *, seed: int, layer_sizes: Sequence[int] | None = None
    ) -> FragmentMap: ...
    @staticmethod
    def blocks(n_params: int, n_fragments: int, *, block_size: int, seed: int) -> FragmentMap: ...
    @staticmethod
    def from_assignment(
        assignment: npt.NDArray[np.integer[Any]], n_fragments: int
    ) -> FragmentMap: ...
    @property
    def n_params(self) -> int: ...
    @property
    def n_fragments(self) -> int: ...
    @property
    def kind(self) -> str: ...
    def fragment_sizes(self) -> npt.NDArray[np.int64]: ...
    def assignment(self) -> npt.NDArray[np.int64]: ...

@final
class Graphs:
    """One round's gossip graphs, one per fragment (in-neighbour lists)."""

    @staticmethod
    def from_edges(
        n_nodes: int,
        edges: Sequence[npt.ArrayLike] | npt.NDArray[np.integer[Any]],
        *,
        round: int = 0,
    ) -> Graphs: ...
    @property
    def n_nodes(self) -> int: ...
    @property
    def n_fragments(self) -> int: ...
    @property
    def degree(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def round(self) -> int: ...
    def mixing_matrix(self, k: int) -> npt.NDArray[np.float64]: ...
    def in_csr(self, k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
    def in_neighbors(self, k: int) -> list[npt.NDArray[np.int64]]: ...
    def in_degrees(self, k: int) -> npt.NDArray[np.int64]: ...
    def out_degrees(self, k: int) -> npt.NDArray[np.int64]: ...
    def sent_params(self, fragments: FragmentMap) -> npt.NDArray[np.int64]: ...

def sample_graphs(
    n_nodes: int,
    n_fragments: int,
    degree: int,
    *,
    seed: int = 0,
    round: int = 0,
    mode: str = "el-oracle",
    edges: npt.NDArray[np.integer[Any]] | None = None,
) -> Graphs: ...

# params/out: float32 (n_nodes, n_params), C-contiguous numpy arrays or torch tensors.
def check_aggregate(
    params: Any, graphs: Graphs, fragments: FragmentMap, out: Any | None = None
) -> None: ...

_Out = TypeVar("_Out")

@overload
def aggregate(
    params: Any, graphs: Graphs, fragments: FragmentMap, out: None = None
) -> npt.NDArray[np.float32]: ...
@overload
def aggregate(params: Any, graphs: Graphs, fragments: FragmentMap, out: _Out) -> _Out: ...

# These two only in builds with the cargo feature `bench-probes` (`bash .ci/setup --test`, which
# is the build stubtest checks in .ci/run).
def copy_into(src: npt.NDArray[np.float32], dst: npt.NDArray[np.float32]) -> None: ...
def panel_ceiling(graphs: Graphs, passes: int) -> float: ...
def num_threads() -> int: ...
def tile_width(n_nodes: int) -> int: ...
def prefault(array: npt.NDArray[np.float32]) -> None: ...
def check_memory(n_bytes: int, what: str) -> None: ...

# The network model's transfer scheduler (mosaic_fast.network.scheduler wraps it).
_Deliveries = tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]

@final
class NetworkScheduler:
    """Fair up/downlink sharing plus latency; see mosaic_fast.network.scheduler for the semantics."""

    def __new__(
        cls,
        uplink: npt.NDArray[np.float64],
        downlink: npt.NDArray[np.float64],
        latency: float | npt.NDArray[np.float64],
        *,
        fifo_per_sender: bool = False,
        fifo_per_pair: bool = False,
        bandwidth_sharing: str = "max-min",
    ) -> NetworkScheduler: ...
    def submit(self, src: int, dst: int, bytes: float, ready_time: float | None = None) -> int: ...
    def submit_many(
        self,
        src: npt.NDArray[np.int64],
        dst: npt.NDArray[np.int64],
        bytes: npt.NDArray[np.float64],
        ready_time: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.int64]: ...
    def next_delivery(
        self, until: float | None = None
    ) -> tuple[int, int, int, float, float, float, float, float] | None: ...
    def run_until(self, until: float) -> _Deliveries: ...
    def run(self) -> _Deliveries: ...
    def cancel_queued(self, src: int) -> npt.NDArray[np.int64]: ...
    def cancel_unsent(self, src: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
    def queued_from(self, src: int) -> int: ...
    def export_state(self) -> dict[str, Any]: ...
    @staticmethod
    def from_state(state: dict[str, Any]) -> NetworkScheduler: ...
    @property
    def now(self) -> float: ...
    @property
    def n_nodes(self) -> int: ...
    @property
    def fifo_per_sender(self) -> bool: ...
    @property
    def fifo_per_pair(self) -> bool: ...
    @property
    def bandwidth_sharing(self) -> str: ...
    @property
    def n_queued(self) -> int: ...
    @property
    def n_active(self) -> int: ...
    @property
    def n_in_flight(self) -> int: ...
    @property
    def next_id(self) -> int: ...

def schedule_transfers(
    uplink: npt.NDArray[np.float64],
    downlink: npt.NDArray[np.float64],
    latency: float | npt.NDArray[np.float64],
    src: npt.NDArray[np.int64],
    dst: npt.NDArray[np.int64],
    bytes: npt.NDArray[np.float64],
    ready_time: npt.NDArray[np.float64],
    *,
    fifo_per_sender: bool = False,
    fifo_per_pair: bool = False,
    bandwidth_sharing: str = "max-min",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
