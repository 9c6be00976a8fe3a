"""The two-stage real DFT (``TwoStageRealDFT``) is the orthonormal ``torch.fft.rfft``/``irfft`` pair, exactly."""
import pytest
import torch

from srconvnet.engine.real_dft import TorchRealDFT, TwoStageRealDFT, largest_prime_factor, real_dft

# odd and even lengths, one or several small factors, P < Q and P = Q; 427 is the ×3 LR width of a 720p frame
TWO_STAGE_LENGTHS = [34, 51, 122, 289, 366, 426, 427]


@pytest.mark.parametrize('n, expected', [(2, 2), (17, 17), (427, 61), (426, 71), (1024, 2), (289, 17), (1088, 17)])
def test_largest_prime_factor(n, expected):
    assert largest_prime_factor(n) == expected


@pytest.mark.parametrize('n, two_stage', [(427, True), (426, True), (272, True), (320, False), (640, False),
                                          (23, False), (431, False), (1088, False), (1, False)])
def test_choice_of_transform(n, two_stage):
    """Two stages only for a composite length with a prime factor ≥ 17 at least as large as its cofactor."""
    dft = real_dft(n, torch.float64, 'cpu')
    assert isinstance(dft, TwoStageRealDFT if two_stage else TorchRealDFT)


@pytest.mark.parametrize('n', TWO_STAGE_LENGTHS)
def test_forward_equals_rfft(n):
    dft = TwoStageRealDFT(n, torch.float64, 'cpu')
    y = torch.randn(3, n, 5, dtype=torch.float64)
    out = torch.full((3, dft.width, 5), float('nan'), dtype=torch.complex128)
    dft.rfft(y, out)
    slots = torch.tensor(dft.frequencies())
    held = slots >= 0
    # every frequency 0..n/2 exactly once, padding slots zero
    assert sorted(slots[held].tolist()) == list(range(n // 2 + 1))
    assert (out[:, ~held] == 0).all()
    expected = torch.fft.rfft(y, dim=1, norm='ortho')
    assert (out[:, held] - expected[:, slots[held]]).abs().max().item() < 1e-12


@pytest.mark.parametrize('n', TWO_STAGE_LENGTHS)
def test_inverse_equals_irfft_of_any_spectrum(n):
    """Also for spectra that are not the transform of a real signal: like ``irfft``, the imaginary parts of
    frequency 0 (and n/2) are ignored."""
    dft = TwoStageRealDFT(n, torch.float64, 'cpu')
    slots = torch.tensor(dft.frequencies())
    held = slots >= 0
    spec = torch.randn(3, dft.width, 5, dtype=torch.complex128)
    spec[:, ~held] = 0
    natural = torch.zeros(3, n // 2 + 1, 5, dtype=torch.complex128)
    natural[:, slots[held]] = spec[:, held]
    assert natural[:, 0].imag.abs().min() > 0
    expected = torch.fft.irfft(natural, n=n, dim=1, norm='ortho')
    assert (dft.irfft(spec) - expected).abs().max().item() < 1e-12


def test_float32_round_trip():
    dft = real_dft(427, torch.float32, 'cpu')
    y = torch.randn(2, 427, 64)
    out = torch.empty(2, dft.width, 64, dtype=torch.complex64)
    dft.rfft(y, out)
    assert (dft.irfft(out) - y).abs().max().item() < 1e-4
