"""``mosaic-fast theory``: parse options, build a TheoryConfig, call mosaic_fast.theory."""

from __future__ import annotations

from typing import Any

import click

from ..theory.config import BACKENDS, CORRELATIONS, FRAGMENTERS, GOSSIP_MODES, SAMPLERS
from .common import one_line_errors


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None


@click.command("theory")
@click.option("--nodes", default=50, show_default=True, help="Number of nodes n.")
@click.option("--params", default=16, show_default=True, help="Number of parameters d.")
@click.option(
    "--K",
    "K",
    default="1,2,4,8,16",
    show_default=True,
    callback=_int_list,
    help="Fragment counts, comma separated.",
)
@click.option(
    "--correlation",
    type=click.Choice(CORRELATIONS),
    default="uniform",
    show_default=True,
    help="A = (1-rho) I + rho 11^T (uniform), rho^|i-j| (toeplitz), or --matrix FILE.",
)
@click.option(
    "--rho", default=0.5, show_default=True, help="Correlation parameter of uniform/toeplitz."
)
@click.option(
    "--matrix",
    type=click.Path(dir_okay=False),
    default=None,
    help=".npy or .csv SPD matrix A (with --correlation file).",
)
@click.option("--eta", type=float, default=None, help="Step size [default: 1/(2 lambda_max(A))].")
@click.option(
    "--gossip",
    type=click.Choice(tuple(GOSSIP_MODES)),
    default="undirected",
    show_default=True,
    help="Gossip law: undirected regular, directed regular (EL-Oracle), pull, local (EL-Local).",
)
@click.option("--degree", default=2, show_default=True, help="Gossip degree s.")
@click.option(
    "--fragments", type=click.Choice(FRAGMENTERS), default="contiguous", show_default=True
)
@click.option("--iterations", default=30, show_default=True, help="Rounds per simulated run.")
@click.option("--draws", default=20, show_default=True, help="Gossip draws for the spectrum.")
@click.option("--seeds", default=20, show_default=True, help="Simulated runs averaged per K.")
@click.option("--seed", default=0, show_default=True, help="Base seed.")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="numpy",
    show_default=True,
    help="Averaging in the simulation: float64 numpy or the float32 Rust kernel.",
)
@click.option(
    "--sampler",
    type=click.Choice(SAMPLERS),
    default="kernel",
    show_default=True,
    help="Graph sampler: the project's kernel or the pure-numpy reference.",
)
@click.option("--out", type=click.Path(file_okay=False), default="theory-out", show_default=True)
def theory(out: str, **options: Any) -> None:
    """Consensus analysis of the quadratic model (paper Sec. 4.2, Figs. 2 and 3)."""
    from ..theory import TheoryConfig, run_theory, write_outputs

    with one_line_errors():
        config = TheoryConfig(**options)
        result = run_theory(config)
        paths = write_outputs(result, out)
    for r in result.per_k:
        exact = r.consensus_sq_norm_exact
        exact_text = "" if exact is None else f"  exact {exact[-1]:.3e}"
        click.echo(
            f"K={r.K:<3d} rho {r.rho.mean():.4f} ± {r.rho.std():.4f}   "
            f"consensus_sq_norm(T) {r.consensus_sq_norm_mean[-1]:.3e}{exact_text}"
        )
    click.echo(f"wrote {', '.join(str(p) for p in paths)}")
