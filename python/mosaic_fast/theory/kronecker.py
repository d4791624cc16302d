"""The explicit Kronecker form of one Mosaic round on the quadratic model (paper Lemma 2).

Vectorisation convention (the one that makes Lemma 2 literal): ``vec`` stacks columns
(``vec(A)[j*m + i] = A[i, j]`` for ``A`` of shape (m, n)) and the commutation matrix satisfies
``K^(m,n) vec(A) = vec(A^T)``. The network state ``X`` (n, d), row ``i`` = node ``i``, is stacked
node by node: ``x = vec(X^T) = X.reshape(-1)`` (index ``i*d + a``). Then

* ``I_n ⊗ B`` applies ``B = I - 2 eta A`` to every node's block (the gradient step);
* ``K^(d,n) x = vec(X)`` is parameter-stacked (index ``a*n + i``), on which
  ``W_t = sum_k Pi_k ⊗ W_t^(k)`` is block-diagonal with block ``a`` equal to ``W_t^(C(a))``;
* ``K^(n,d)`` returns to node stacking and ``P = (I_n - 11^T/n) ⊗ I_d`` removes the node mean.

So ``M_t = P K^(n,d) W_t K^(d,n) (I_n ⊗ B)`` maps ``X_t.reshape(-1)`` of a consensus error to
``e_{t+1}.reshape(-1)``. Everything here is dense float64 (``nd x nd``) and meant for small sizes.
"""

from __future__ import annotations

import numpy as np


def commutation_matrix(m: int, n: int) -> np.ndarray:
    """``K^(m,n)``: float64, shape (m*n, m*n), with ``K^(m,n) vec(A) = vec(A^T)`` for ``A`` (m, n)."""
    k = np.zeros((m * n, m * n))
    i, j = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    k[(i * n + j).ravel(), (j * m + i).ravel()] = 1.0
    return k


def fragment_projectors(assignment: np.ndarray, n_fragments: int) -> np.ndarray:
    """``Pi_k`` as float64, shape (K, d, d): diagonal 0/1 projectors onto each fragment's coordinates."""
    d = assignment.shape[0]
    pis = np.zeros((n_fragments, d, d))
    pis[assignment, np.arange(d), np.arange(d)] = 1.0
    return pis


def block_gossip_matrix(mixing: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """``W_t = sum_k Pi_k ⊗ W^(k)``: float64, shape (d*n, d*n), acting on parameter-stacked vectors.

    ``mixing``: float64 (K, n, n); ``assignment``: int64 (d,) fragment of each coordinate. Block
    ``(a, a)`` is ``W^(C(a))``; it is placed directly (same matrix as the Kronecker sum, d times cheaper).
    """
    n, d = mixing.shape[1], assignment.shape[0]
    out = np.zeros((d, n, d, n))
    out[np.arange(d), :, np.arange(d), :] = mixing[assignment]
    return out.reshape(d * n, d * n)


def consensus_operator(
    mixing: np.ndarray, assignment: np.ndarray, grad_op: np.ndarray, *, literal: bool = False
) -> np.ndarray:
    """``M_t = P K^(n,d) W_t K^(d,n) (I_n ⊗ B)``: float64, shape (n*d, n*d), node-stacked.

    ``mixing``: float64 (K, n, n); ``assignment``: int64 (d,); ``grad_op``: ``B``, float64 (d, d).
    ``literal=True`` multiplies the five dense matrices as written (O((nd)^3), for checks); the
    default builds the same matrix applying the permutations, ``P`` and ``I_n ⊗ B`` by indexing.
    """
    n, d = mixing.shape[1], grad_op.shape[0]
    w_block = block_gossip_matrix(mixing, assignment)
    if literal:
        proj = np.kron(np.eye(n) - np.full((n, n), 1.0 / n), np.eye(d))
        k_nd, k_dn = commutation_matrix(n, d), commutation_matrix(d, n)
        literal_out: np.ndarray = proj @ k_nd @ w_block @ k_dn @ np.kron(np.eye(n), grad_op)
        return literal_out
    # K^(n,d) W K^(d,n) = W[perm][:, perm] with perm[i*d + a] = a*n + i (K^(d,n) is a permutation).
    perm = (np.arange(d)[None, :] * n + np.arange(n)[:, None]).reshape(-1)
    g = w_block[np.ix_(perm, perm)].reshape(n * d, n, d) @ grad_op  # right factor I_n ⊗ B
    g = g.reshape(n, d, n * d)
    out: np.ndarray = (g - g.mean(axis=0, keepdims=True)).reshape(n * d, n * d)  # left factor P
    return out


def contraction_spectrum(m: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``M^T M`` in ascending order: float64, shape (n*d,)."""
    return np.linalg.eigvalsh(m.T @ m)
