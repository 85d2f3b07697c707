"""A numba kernel for the words layer: dot products of CSR rows (a[i], b[i]) for pairs sorted by `a`.

Each thread takes whole runs of one `a`: it scatters row a into a dense buffer once, then reads each b's entries
against it (no merge, no row copies). Imported only when the words layer runs (numba is heavy to import).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, nogil=True)
def sorted_pair_dots(indptr, indices, data, a, b, starts, n_cols, n_threads, out):
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
