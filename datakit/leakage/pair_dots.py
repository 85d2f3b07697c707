"""Dot products of CSR rows (a[i], b[i]) for the words layer, by a numba kernel.

Pairs are sorted by `a`; each thread takes whole runs of one `a`: it scatters row a into a dense buffer once, then
reads each b's entries against it (no merge, no row copies). 4-5x faster than scipy's fancy row indexing and
elementwise product on retrieval-shaped pairs. Imported only when the words layer runs (numba is heavy to import).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


@numba.njit(parallel=True, cache=True, nogil=True)
def _sorted_pair_dots(indptr, indices, data, a, b, starts, n_cols, n_threads, out):
    n_runs = len(starts) - 1
    for t in numba.prange(n_threads):
        dense = np.zeros(n_cols, dtype=np.float64)
        for r in range(t, n_runs, n_threads):
            first, stop = starts[r], starts[r + 1]
            row = a[first]
            for p in range(indptr[row], indptr[row + 1]):
                dense[indices[p]] = data[p]
            for i in range(first, stop):
                total = 0.0
                for p in range(indptr[b[i]], indptr[b[i] + 1]):
                    total += dense[indices[p]] * data[p]
                out[i] = total
            for p in range(indptr[row], indptr[row + 1]):
                dense[indices[p]] = 0.0


def row_pair_dots(matrix: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 dot products of rows (a[i], b[i]) of a CSR matrix, in the pairs' order."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if len(a) == 0:
        return np.zeros(0, dtype=np.float32)
    order = np.argsort(a, kind="stable")
    sa, sb = a[order], b[order]
    starts = np.flatnonzero(np.r_[True, sa[1:] != sa[:-1], True]).astype(np.int64)
    sorted_out = np.empty(len(a), dtype=np.float64)
    _sorted_pair_dots(
        matrix.indptr.astype(np.int64, copy=False),
        matrix.indices.astype(np.int64, copy=False),
        matrix.data.astype(np.float64, copy=False),
        sa,
        sb,
        starts,
        matrix.shape[1],
        numba.get_num_threads(),
        sorted_out,
    )
    out = np.empty(len(a), dtype=np.float32)
    out[order] = sorted_out
    return out
