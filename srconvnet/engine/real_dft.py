"""Orthonormal real FFT and its inverse along the width of channels-last row strips, for the strip-wise body.

``torch.fft`` (MKL on CPU) is fast for lengths made of small primes but several times slower per element when the
length has a large prime factor: the ×3 LR width of a 720p frame, 427 = 7·61, costs about 8× more per element than
432. For such a length N = P·Q (Q its largest prime factor, 17 ≤ Q < N, P ≤ Q) ``TwoStageRealDFT`` computes the same
transforms exactly (Cooley-Tukey with one split) as two matrix products on the B×N×C layout, where they run as
GEMMs over the C channels: a real Q-point DFT (Q multiply-adds per value), then, for each pair of conjugate Q-point
frequencies ±g, a 2P×2P real matrix that applies the twiddle factors, the P-point DFT and the conjugate symmetry of
a real signal at once. Everything else uses ``TorchRealDFT`` (``torch.fft.rfft``/``irfft``).

Both keep the frequencies of a row in some order in a ``width``-long complex axis; the Fourier unit's
frequency-domain steps act on each frequency separately, so the order never needs undoing. ``TwoStageRealDFT``
groups them by ±g and pads the group g = 0 with zero slots (zero after the forward transform, ignored by the
inverse), so that every group has the same size.
"""
import functools
import math

import torch

# smallest prime factor for which MKL's FFT is the slow kind (it has fast kernels up to 13)
MIN_SLOW_PRIME = 17


def dft_matrices(n, num_freq, dtype, device):
    """``cos`` and ``sin`` of ``2π·i·k/n`` for i < n, k < num_freq (the index product is reduced mod n first)."""
    i = torch.arange(n, device=device)
    k = torch.arange(num_freq, device=device)
    angle = ((i[:, None] * k[None, :]) % n).to(dtype) * (2 * math.pi / n)
    return torch.cos(angle), torch.sin(angle)


def largest_prime_factor(n):
    """Largest prime factor of ``n`` ≥ 2."""
    factor, largest = 2, 1
    while factor * factor <= n:
        while n % factor == 0:
            largest, n = factor, n // factor
        factor += 1
    return max(largest, n) if n > 1 else largest


def real_dft(n, dtype, device):
    """The transform pair for rows of length ``n``: ``TwoStageRealDFT`` where it is faster, else ``TorchRealDFT``.

    Measured on 2 threads (AVX2), forward + inverse of ~1M-value strips: the two stages win when the largest prime
    factor Q is at least 17 and the cofactor P at most Q (2.1-3.2x less time at 427, 426, 289, 267, 51; about
    even at 272 = 16·17) and lose at P > Q (2x more at 1088 = 64·17), where the second stage's 2P multiply-adds per
    value dominate.
    """
    q = largest_prime_factor(n) if n > 1 else 1
    if MIN_SLOW_PRIME <= q < n and n // q <= q:
        return TwoStageRealDFT(n, dtype, device)
    return TorchRealDFT(n)


class TorchRealDFT:
    """``torch.fft.rfft``/``irfft`` (orthonormal) along dim 1 of B×N×C tensors; frequencies in natural order."""

    def __init__(self, n):
        self.n = n
        self.width = n // 2 + 1

    def rfft(self, y, out):
        """Write the spectrum of real ``y`` (B×N×C) into the complex ``out`` (B×width×C)."""
        torch.fft.rfft(y, dim=1, norm='ortho', out=out)

    def irfft(self, spec):
        """Real B×N×C inverse of ``spec`` (B×width×C, contiguous); ignores the imaginary part of frequency 0 (and
        N/2)."""
        # torch.fft returns the transformed axis innermost; oneDNN reads such a strided operand about 2x slower
        # than a copy to B×N×C costs
        return torch.fft.irfft(spec, n=self.n, dim=1, norm='ortho').contiguous()


class TwoStageRealDFT:
    """Exact orthonormal rfft/irfft of length N = P·Q along dim 1 of B×N×C tensors as two matrix products each.

    Decimation: x[P·n1 + n2] (n1 < Q, n2 < P). Stage 1 takes the real Q-point DFT over n1 of every n2 and channel,
    A[k1, n2] = Σ_n1 x[P·n1 + n2]·e^(−2πi·n1·k1/Q), keeping Re and Im of k1 = 0..(Q−1)/2 (A[Q−g] = conj A[g]). The
    frequencies k ≤ N/2 with k ≡ ±g (mod Q) are then linear in the 2P numbers Re A[g, ·], Im A[g, ·] alone:
    X[k] = N^(−1/2)·Σ_n2 e^(−2πi·n2·k/N)·Ã[k mod Q, n2], Ã[Q−g] = conj A[g]; for g ≥ 1 there are exactly P of them,
    and the group g = 0 (⌊P/2⌋ + 1 of them, from P real numbers) is padded to the same size. The inverse runs the
    same two stages backwards on the Hermitian extension that ``irfft`` uses (imaginary parts of frequency 0 and N/2
    ignored). The matrices are built in float64 and cached per (N, dtype, device).
    """

    def __init__(self, n, dtype, device):
        self.n = n
        self.q = largest_prime_factor(n)
        self.p = n // self.q
        self.groups = (self.q + 1) // 2  # g = 0 .. (Q−1)/2
        self.width = self.groups * self.p
        self.stage1, self.stage2, self.inverse2, self.inverse1 = _two_stage_matrices(n, self.q, dtype, device)

    def frequencies(self):
        """Frequency held in each of the ``width`` slots, −1 for a padding slot (always zero)."""
        return _slots(self.n, self.q)

    def rfft(self, y, out):
        """Write the spectrum of real ``y`` (B×N×C, contiguous) into the complex ``out`` (B×width×C)."""
        b, _, c = y.shape
        p, q, groups = self.p, self.q, self.groups
        a = torch.matmul(self.stage1, y.view(b, q, p * c))  # B×(Q+1)×PC: (g, Re/Im) × (n2, C)
        spec = torch.matmul(self.stage2, a.view(b, groups, 2 * p, c))  # B×groups×2P×C: (slot, Re/Im) × C
        # Re/Im move next to each other (the complex layout)
        torch.view_as_real(out).copy_(spec.view(b, self.width, 2, c).transpose(2, 3))

    def irfft(self, spec):
        """Real B×N×C inverse of ``spec`` (B×width×C); ignores the imaginary part of frequency 0 (and N/2)."""
        b, _, c = spec.shape
        p, groups = self.p, self.groups
        parts = torch.view_as_real(spec).transpose(2, 3).reshape(b, groups, 2 * p, c)
        a = torch.matmul(self.inverse2, parts)  # B×groups×2P×C: (Re/Im B[g, n2]) × C
        return torch.matmul(self.inverse1, a.view(b, 2 * groups, p * c)).view(b, self.n, c)


def _slots(n, q):
    """Frequencies k ≤ n/2 grouped by g = min(k mod q, q − k mod q), each group padded with −1 to n/q slots."""
    p = n // q
    slots = []
    for g in range((q + 1) // 2):
        ks = [k for k in range(n // 2 + 1) if k % q in (g, (q - g) % q)]
        slots += ks + [-1] * (p - len(ks))
    return slots


@functools.lru_cache(maxsize=16)
def _two_stage_matrices(n, q, dtype, device):
    """(stage 1, stage 2, inverse stage 2, inverse stage 1) matrices of ``TwoStageRealDFT`` for length n = p·q."""
    p = n // q
    groups = (q + 1) // 2
    f64 = torch.float64
    scale = 1 / math.sqrt(n)
    two_pi = 2 * math.pi
    # stage 1: rows (g, Re/Im), (q + 1)×q; g = 0 has a zero row for its missing imaginary part
    cos, sin = dft_matrices(q, groups, f64, 'cpu')  # q×groups
    stage1 = torch.stack((cos.t(), -sin.t()), 1).reshape(2 * groups, q)
    stage1[1] = 0
    # inverse stage 1: y[p·n1 + n2] = B[0, n2] + Σ_g≥1 2·(Re B[g, n2]·cos − Im B[g, n2]·sin)(2π·g·n1/q)
    inverse1 = stage1.t().clone() * 2
    inverse1[:, 0] = 1
    slots = _slots(n, q)
    stage2 = torch.zeros(groups, p, 2, 2, p, dtype=f64)  # group, slot, Re/Im out, Re/Im in, n2
    inverse2 = torch.zeros(groups, 2, p, p, 2, dtype=f64)  # group, Re/Im out, n2, slot, Re/Im in
    n2 = torch.arange(p, dtype=f64)
    for gi in range(groups):
        group_slots = slots[gi * p:(gi + 1) * p]
        for j, k in enumerate(group_slots):
            if k < 0:
                continue
            # forward: X[k] = scale·Σ_n2 t·Ã, t = e^(−2πi·n2·k/n), Ã = Re A + s·i·Im A, s = −1 for k ≡ −g
            s = -1 if (k % q) > q // 2 else 1
            angle = -two_pi * n2 * k / n
            t_re, t_im = torch.cos(angle) * scale, torch.sin(angle) * scale
            stage2[gi, j, 0, 0], stage2[gi, j, 1, 0] = t_re, t_im
            stage2[gi, j, 0, 1], stage2[gi, j, 1, 1] = -s * t_im, s * t_re
        # inverse: B[g, n2] = scale·Σ_k' e^(2πi·k'·n2/n)·X̃[k'] over k' = g + q·k2 < n (one per k2 < p), with
        # X̃[k'] = X[k'] (k' ≤ n/2) or conj X[n − k'], real part only at k' = 0 and k' = n/2
        for k2 in range(p):
            kk = gi + q * k2
            stored, conj = (kk, False) if kk <= n // 2 else (n - kk, True)
            j = group_slots.index(stored)
            angle = two_pi * n2 * kk / n
            c_re, c_im = torch.cos(angle) * scale, torch.sin(angle) * scale
            real_only = stored == 0 or 2 * stored == n
            sign = 0 if real_only else (-1 if conj else 1)  # X̃ = a + sign·i·b
            inverse2[gi, 0, :, j, 0] += c_re
            inverse2[gi, 1, :, j, 0] += c_im
            inverse2[gi, 0, :, j, 1] += -sign * c_im
            inverse2[gi, 1, :, j, 1] += sign * c_re
        if gi == 0:
            inverse2[gi, 1] = 0  # B[0, n2] is real
    stage2 = stage2.reshape(groups, 2 * p, 2 * p)
    inverse2 = inverse2.reshape(groups, 2 * p, 2 * p)
    return tuple(m.to(dtype=dtype, device=device).contiguous() for m in (stage1, stage2, inverse2, inverse1))


# Two-stage DFT matrices of any length, built from tensor operations only, so that an exported graph
# (``srconvnet.export.exportable``, captured by ``torch.export`` with dynamic sizes) computes them from the input's size
# at run time. Unlike ``TwoStageRealDFT``, the split N = P·Q is any factorisation (chosen in the graph, Q may be even)
# and no slot is padding: the group g of the real transform holds, in slot m, the frequency r = min(g + Q·m, N − g −
# Q·m) ≤ N/2, so that the groups g = 0 and (for even Q) g = Q/2 hold some frequencies twice (the same values; the
# inverse reads each slot as the frequency g + Q·m of the Hermitian extension, hence every frequency exactly once).


def factor_pair(n, weight):
    """(P, Q) with P·Q = n minimising Q + weight·P (the multiply-adds per value of the two stages).

    ``n`` is an int (the split is then a constant), or a symbolic size under ``torch.export``: the choice is then
    made in the graph (an argmin over the divisors, read back as a data-dependent size), so that the exported graph
    picks the split for each input. Both take the smallest Q among equal costs.
    """
    if isinstance(n, int):
        q = min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: d + weight * (n // d))
        return n // q, q
    candidates = torch.arange(1, n + 1)
    total = candidates[-1]  # n as a tensor (the graph's arithmetic on it stays tensor arithmetic)
    cost = candidates + weight * torch.div(total, candidates, rounding_mode='floor')
    cost = torch.where(torch.remainder(total, candidates) == 0, cost, cost + (weight + 1) * total * total)
    q = candidates[torch.argmin(cost)].item()
    torch._check(q >= 1)
    torch._check(q <= n)
    torch._check(n % q == 0)
    return n // q, q


def _angles(index_product, n, dtype):
    """2π·(index_product mod n)/n (reduced first, so that float32 angles stay accurate); ``n`` a 0-d int tensor."""
    return torch.remainder(index_product, n).to(dtype) * (2 * math.pi) / n.to(dtype)


def factored_real_dft(n, dtype):
    """Orthonormal rfft/irfft of length ``n`` along the leading axis of an N × X matrix, as four matrix products.

    Returns ``(p, q, groups, s1, s2, i2, i1)``; with x viewed as Q × (P·X) (index P·n1 + n2):
    forward ``s2 @ (s1 @ x).view(groups, 2P, X)`` (s1: 2G × Q, rows (g, Re/Im); s2: G × 2P × 2P, input columns
    (Re/Im, n2), output rows (Re/Im, slot m)); inverse ``i1 @ (i2 @ spec).view(2G, P·X)`` (i2: G × 2P × 2P, output
    rows (Re/Im, n2); i1: Q × 2G), which, like ``irfft``, ignores the imaginary parts of frequencies 0 and N/2.
    """
    p, q = factor_pair(n, 2)  # stage 1 costs about Q, stage 2 about 2P multiply-adds per value
    groups = q // 2 + 1
    n, qt = torch.full((), n), torch.full((), q)  # 0-d tensors: the exported graph computes with them
    g = torch.arange(groups)
    n1 = torch.arange(q)
    a = _angles(g[:, None] * n1[None, :], qt, dtype)
    s1 = torch.stack((torch.cos(a), -torch.sin(a)), 1).flatten(0, 1)
    scale = torch.rsqrt(n.to(dtype))
    m = torch.arange(p)
    k = g[:, None] + qt * m[None, :]  # the frequency g + Q·m of each slot; it holds r = min(k, N − k)
    r = torch.minimum(k, n - k)
    conj = torch.where(k <= n - k, 1.0, -1.0).to(dtype)  # −1: X[r] = conj of the stage-1 value's extension
    # forward: X[r] = scale·Σ_n2 e^(−2πi·n2·r/N)·(Re A[g, n2] + conj·i·Im A[g, n2])
    t = _angles(r[:, :, None] * m[None, None, :], n, dtype)  # G × slot × n2
    c, s = torch.cos(t) * scale, torch.sin(t) * scale
    c2 = conj[:, :, None]
    s2 = torch.cat((torch.cat((c, c2 * s), 2), torch.cat((-s, c2 * c), 2)), 1)
    # inverse: B[g, n2] = scale·Σ_m e^(2πi·n2·k/N)·X̃[k], X̃[k] = Re + conj·i·Im of slot m (Re only at r = 0, N/2)
    keep = torch.where((r == 0) | (2 * r == n), 0.0, 1.0).to(dtype) * conj
    t = _angles(m[None, :, None] * k[:, None, :], n, dtype)  # G × n2 × slot
    c, s = torch.cos(t) * scale, torch.sin(t) * scale
    k2 = keep[:, None, :]
    i2 = torch.cat((torch.cat((c, -k2 * s), 2), torch.cat((s, k2 * c), 2)), 1)
    # y[P·n1 + n2] = Σ_g weight_g·Re(B[g, n2]·e^(2πi·g·n1/Q)), weight 1 for g = 0 and g = Q/2, else 2
    weight = torch.where((g == 0) | (2 * g == qt), 1.0, 2.0).to(dtype)
    a = _angles(n1[:, None] * g[None, :], qt, dtype)
    i1 = torch.stack((weight * torch.cos(a), -weight * torch.sin(a)), 2).flatten(1, 2)
    return p, q, groups, s1, s2, i2, i1


def factored_complex_dft(n, dtype):
    """Orthonormal complex DFT of length ``n`` and its inverse along the leading axis, as two matrix products each.

    Returns ``(p, q, f1, f2, b2, b1)``; with the data as 2 × N × X (Re/Im, index P·n1 + n2), forward
    ``f2 @ (f1 @ x.view(2Q, P·X)).view(Q, 2P, X)`` (f1: 2Q × 2Q, rows (k1, Re/Im), columns (Re/Im, n1); f2: Q ×
    2P × 2P, rows (Re/Im, k2), columns (Re/Im, n2)) gives frequency k1 + Q·k2 at (k1, Re/Im, k2); the inverse
    ``b1 @ (b2 @ spec).view(2Q, P·X)`` returns 2 × N × X.
    """
    p, q = factor_pair(n, 1)
    k1 = torch.arange(q)
    n, qt = torch.full((), n), torch.full((), q)  # 0-d tensors: the exported graph computes with them
    a = _angles(k1[:, None] * k1[None, :], qt, dtype)  # k1 × n1
    c, s = torch.cos(a), torch.sin(a)
    f1 = torch.stack((torch.cat((c, s), 1), torch.cat((-s, c), 1)), 1).flatten(0, 1)  # (Re, Im)·e^(−iθ)
    scale = torch.rsqrt(n.to(dtype))
    k2 = torch.arange(p)
    t = _angles((k1[:, None, None] + qt * k2[None, :, None]) * k2[None, None, :], n, dtype)  # k1 × k2 × n2
    c, s = torch.cos(t) * scale, torch.sin(t) * scale
    f2 = torch.cat((torch.cat((c, s), 2), torch.cat((-s, c), 2)), 1)
    ct, st = c.transpose(1, 2), s.transpose(1, 2)  # k1 × n2 × k2: the conjugate transpose
    b2 = torch.cat((torch.cat((ct, -st), 2), torch.cat((st, ct), 2)), 1)
    c, s = torch.cos(a).t(), torch.sin(a).t()  # n1 × k1
    b1 = torch.cat((torch.stack((c, -s), 2).flatten(1, 2), torch.stack((s, c), 2).flatten(1, 2)), 0)
    return p, q, f1, f2, b2, b1
