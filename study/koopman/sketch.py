"""CountSketch of snapshot vectors: P coordinates into s signed buckets, hashed on the fly.

The sketch is the linear map ``S`` (s, P) with one nonzero per column:
``S[bucket(i), i] = sign(i)``, so ``y = S x`` costs O(P) and needs no dense s x P matrix.
``bucket`` and ``sign`` come from two seeded multiply-shift hashes of the coordinate index
(Dietzfelbinger et al. 1997; 2-universal for indices below 2**32)::

    h(i) = (a * i + b) mod 2**64           a odd, a and b drawn from random_state
    bucket(i) = ((h1(i) >> 32) * s) >> 32   (the top 32 bits scaled to [0, s))
    sign(i) = +1 if the top bit of h2(i) is 0 else -1     ((h2 >> 63) | 1, arithmetic shift)

They are computed in chunks of ``chunk_size`` indices at a time, so memory never holds an
O(P) index array; when P fits in one chunk the chunk's hashes are cached (memory O(chunk)).
Integer arithmetic is int64 with wrap-around in both backends, so numpy arrays and torch
tensors (on their own device, via ``index_add_``) get bit-identical buckets and signs.

Why a sketch keeps DMD eigenvalues (the theorem tested in tests/test_sketch.py): the nonzero
eigenvalues of ``A_tilde = U^T X' V S^-1`` equal the nonzero eigenvalues of ``X^+ X'`` (``AB``
and ``BA`` share them). If the data lie in a subspace ``R`` spanned by the columns of ``X``
(so ``X' = Q C'`` and ``X = Q C`` for a basis ``Q`` of ``R``, ``C`` of full row rank) and the
map ``T`` (here block-diag of S over the delay blocks) is injective on ``R``, then
``(T X)^+ (T X') = C^+ (T Q)^+ T Q C' = C^+ C' = X^+ X'``: the spectrum is unchanged. Without
rank truncation this is exact; with truncation the kept subspace depends on the inner
product, which a CountSketch preserves only approximately (Johnson-Lindenstrauss), and when
``s`` is below the data rank ``T`` is not injective and the eigenvalues move (measured in the
tests).
"""

from __future__ import annotations

import numpy as np

DEFAULT_CHUNK_SIZE = 2**18  # 256 Ki indices: ~2 MiB of int64 per hash array per chunk
_MASK_32 = 0xFFFFFFFF


def _as_signed_64(value: int) -> int:
    """Two's-complement int64 with the same 64 bits as the unsigned ``value``."""
    return value - (1 << 64) if value >= (1 << 63) else value


class CountSketch:
    """Seeded CountSketch ``(…, n_features) -> (…, sketch_dimension)`` for numpy or torch.

    ``transform(x)`` accepts ``(n_features,)`` or ``(n_rows, n_features)`` (rows are replicas)
    and returns float64 of the same kind and device as ``x``. Deterministic given
    ``random_state``. The map is linear; ``to_dense()`` (small P only) returns it as (s, P).
    """

    def __init__(self, n_features: int, sketch_dimension: int, *, random_state: int = 0,
                 chunk_size: int = DEFAULT_CHUNK_SIZE):
        if not 1 <= sketch_dimension < 2**31:
            raise ValueError(f"sketch_dimension must be in [1, 2**31); got {sketch_dimension!r}")
        if not 1 <= n_features < 2**32:
            raise ValueError(f"n_features must be in [1, 2**32); got {n_features!r}")
        self.n_features = int(n_features)
        self.sketch_dimension = int(sketch_dimension)
        self.random_state = int(random_state)
        self.chunk_size = int(chunk_size)
        generator = np.random.default_rng(self.random_state)
        draws = [int(value) for value in generator.integers(0, 2**64, size=4, dtype=np.uint64)]
        self._bucket_multiplier = _as_signed_64(draws[0] | 1)
        self._bucket_offset = _as_signed_64(draws[1])
        self._sign_multiplier = _as_signed_64(draws[2] | 1)
        self._sign_offset = _as_signed_64(draws[3])
        self._cache: dict = {}  # (backend, device) -> (buckets, signs) when P fits one chunk
        self._workspace: dict = {}  # reused O(chunk) hashing buffers of the numpy path

    def _hashes_numpy(self, start: int, stop: int, workspace: dict | None = None):
        """(buckets int64, signs float64) of indices [start, stop), in place in ``workspace``.

        In-place ufuncs on reused buffers: fresh multi-MiB temporaries would each cost a
        round of page faults, which dominated the sketch of a 1e7-parameter snapshot.
        """
        size = stop - start
        if workspace is None:
            workspace = {}
        if workspace.get("size", -1) < size:
            workspace.update(size=size, index=np.empty(size, np.int64),
                             buckets=np.empty(size, np.int64), signed=np.empty(size, np.int64),
                             signs=np.empty(size), weights=np.empty(size))
        index, buckets = workspace["index"][:size], workspace["buckets"][:size]
        signed, signs = workspace["signed"][:size], workspace["signs"][:size]
        index[:] = np.arange(start, stop, dtype=np.int64)
        with np.errstate(over="ignore"):  # wrap-around modulo 2**64 is the hash
            np.multiply(index, np.int64(self._bucket_multiplier), out=buckets)
            np.add(buckets, np.int64(self._bucket_offset), out=buckets)
            np.multiply(index, np.int64(self._sign_multiplier), out=signed)
            np.add(signed, np.int64(self._sign_offset), out=signed)
        np.right_shift(buckets, 32, out=buckets)
        np.bitwise_and(buckets, _MASK_32, out=buckets)
        np.multiply(buckets, self.sketch_dimension, out=buckets)
        np.right_shift(buckets, 32, out=buckets)
        np.right_shift(signed, 63, out=signed)  # arithmetic shift: -1 if the top bit is set
        np.bitwise_or(signed, 1, out=signed)  # -1 -> -1, 0 -> +1
        signs[:] = signed
        return buckets, signs

    def _hashes_torch(self, start: int, stop: int, device):
        import torch  # lazy: the sketch also serves numpy-only callers

        index = torch.arange(start, stop, dtype=torch.int64, device=device)
        high = index * self._bucket_multiplier + self._bucket_offset
        buckets = (((high >> 32) & _MASK_32) * self.sketch_dimension) >> 32
        signed = index * self._sign_multiplier + self._sign_offset
        signs = ((signed >> 63) | 1).to(torch.float64)  # same bits as the numpy path
        return buckets, signs

    def _chunk_hashes(self, start: int, stop: int, backend: str, device=None):
        single_chunk = self.n_features <= self.chunk_size
        key = (backend, str(device))
        if single_chunk and key in self._cache:
            return self._cache[key]
        if backend == "torch":
            hashes = self._hashes_torch(start, stop, device)
        else:
            hashes = self._hashes_numpy(start, stop, None if single_chunk else self._workspace)
        if single_chunk:
            self._cache[key] = hashes
        return hashes

    def transform(self, values):
        """``S x`` for ``x`` of shape ``(n_features,)`` or ``(n_rows, n_features)``.

        numpy in, numpy out; a torch tensor in, a float64 tensor on its device out (CPU
        tensors are sketched through their numpy view: no copy, and faster than
        ``index_add_`` on CPU; other devices use ``index_add_`` on the device).
        """
        if type(values).__module__.startswith("torch"):
            if values.device.type == "cpu":
                import torch

                return torch.from_numpy(self._transform_numpy(values.detach().numpy()))
            return self._transform_torch(values)
        return self._transform_numpy(np.asarray(values))

    def _check_shape(self, shape) -> None:
        if len(shape) not in (1, 2) or shape[-1] != self.n_features:
            raise ValueError(
                f"CountSketch expects (n_features,) or (n_rows, n_features) with n_features="
                f"{self.n_features}; got shape {tuple(shape)}")

    def _transform_numpy(self, values: np.ndarray) -> np.ndarray:
        self._check_shape(values.shape)
        rows = values.reshape(-1, self.n_features)
        sketched = np.zeros((rows.shape[0], self.sketch_dimension), dtype=np.float64)
        for start in range(0, self.n_features, self.chunk_size):
            stop = min(start + self.chunk_size, self.n_features)
            buckets, signs = self._chunk_hashes(start, stop, "numpy")
            weights = self._workspace.setdefault(
                "row_weights", np.empty(min(self.chunk_size, self.n_features)))
            for row, target in zip(rows, sketched):
                np.multiply(row[start:stop], signs, out=weights[: stop - start])
                target += np.bincount(buckets, weights=weights[: stop - start],
                                      minlength=self.sketch_dimension)
        return sketched.reshape(values.shape[:-1] + (self.sketch_dimension,))

    def _transform_torch(self, values):
        import torch

        self._check_shape(tuple(values.shape))
        rows = values.detach().reshape(-1, self.n_features)
        sketched = torch.zeros((rows.shape[0], self.sketch_dimension), dtype=torch.float64,
                               device=rows.device)
        for start in range(0, self.n_features, self.chunk_size):
            stop = min(start + self.chunk_size, self.n_features)
            buckets, signs = self._chunk_hashes(start, stop, "torch", rows.device)
            sketched.index_add_(1, buckets, rows[:, start:stop].to(torch.float64) * signs)
        return sketched.reshape(tuple(values.shape[:-1]) + (self.sketch_dimension,))

    def to_dense(self) -> np.ndarray:
        """The map as a dense (s, P) matrix — for tests and small P only."""
        dense = np.zeros((self.sketch_dimension, self.n_features))
        buckets, signs = self._hashes_numpy(0, self.n_features)
        dense[buckets, np.arange(self.n_features)] = signs
        return dense
