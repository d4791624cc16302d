"""Settings of the gossip: nodes, fragments, rounds, and the graphs each fragment travels."""

from __future__ import annotations

from dataclasses import dataclass

from .choices import FRAGMENTERS, TOPOLOGIES
from .setting import setting


@dataclass(frozen=True)
class Gossip:
    """How many nodes, fragments, peers and rounds."""

    K: int = setting(
        8, help="Number of fragments K (1 = Epidemic Learning).", at_least=1, axis=True
    )
    nodes: int = setting(16, help="Number of nodes n.", at_least=2, axis=True)
    degree: int = setting(
        8,
        help="Out-degree s of every node's gossip graph per fragment (paper: 8).",
        at_least=1,
        axis=True,
    )
    rounds: int = setting(100, help="Communication rounds.", at_least=1, resumable=True)


@dataclass(frozen=True)
class Graphs:
    """How the model is cut into fragments and the graphs they are sent along."""

    fragmenter: str = setting(
        "random",
        help="How coordinates are split into fragments: random (balanced within each layer, seeded; "
        "as SHATTER's and DivShare's code), contiguous, blocks, or assignment:FILE (.npy or text: "
        "one fragment id per coordinate).",
        choices=FRAGMENTERS,
        also=("assignment-file", "object"),
        axis=True,
    )
    block_size: int = setting(
        1024, help="Block length for --fragmenter blocks.", at_least=1, axis=True
    )
    topology: str = setting(
        "el-oracle",
        help="Per-fragment gossip graphs, edges:FILE (a static edge list or adjacency matrix), or module:function (round, fragment) -> edges.",
        choices=TOPOLOGIES,
        also=("edges-file", "reference", "object"),
        axis=True,
    )
