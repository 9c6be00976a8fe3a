"""The engine computes what the module forwards compute (float64: to rounding; float32 fused: to float32 rounding).

Cases: batch > 1, odd and tiny sizes, strips of one row in the body and in the tail, widths whose FFT runs in two
stages (``real_dft``), oneDNN's fused kernels and the public-op fallback, and BasicSR's SRModel.test, which runs it.
"""
import pytest
import torch

import srconvnet.engine as engine
from engine_models import golden_srconvnet, module_forwards, tiny
from srconvnet.engine import fused, strips, tail


def engine_forward(model, x):
    """``model(x)`` without autograd, asserting that the engine takes it."""
    with torch.inference_mode():
        assert engine.accepts(model, x)
        return model(x)


@pytest.mark.parametrize('name', ['srconvnet_x4_small_a.pt', 'srconvnet_x3_small_b.pt'])
def test_engine_reproduces_golden(name, golden_dir):
    golden = torch.load(golden_dir / name, weights_only=True)
    model = golden_srconvnet(golden)
    out = engine_forward(model, golden['input'] / 255.) * 255.
    assert (out - golden['output']).abs().max().item() < 1e-8


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('shape', [(1, 1, 1), (1, 2, 2), (2, 5, 7), (3, 9, 4)])
def test_engine_equals_module_forwards(scale, shape):
    model = tiny(scale)
    x = torch.rand(shape[0], 3, *shape[1:], dtype=torch.float64)
    out = engine_forward(model, x)
    assert out.shape == (shape[0], 3, shape[1] * scale, shape[2] * scale)
    assert (out - module_forwards(model, x)).abs().max().item() < 1e-10


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('width', [10, 34, 51, 38])
@pytest.mark.slow
def test_strips_of_one_row_and_one_column_equal_module_forwards(scale, width, monkeypatch):
    """Body strips of one row (softmax from per-row maxima), FFT column strips of one frequency (or padding slot:
    34 = 2·17, 51 = 3·17 and 38 = 2·19 take the two-stage DFT) and tail strips of one LR row."""
    model = tiny(scale)
    x = torch.rand(2, 3, 7, width, dtype=torch.float64)
    monkeypatch.setattr(strips, 'BODY_STRIP_ELEMENTS', 1)
    monkeypatch.setattr(tail, 'STRIP_ELEMENTS', 1)
    assert (engine_forward(model, x) - module_forwards(model, x)).abs().max().item() < 1e-10


@pytest.mark.parametrize('width', [34, 51])
def test_two_stage_dft_widths_with_golden_weights(width, golden_dir):
    golden = torch.load(golden_dir / 'srconvnet_x4_small_a.pt', weights_only=True)
    model = golden_srconvnet(golden)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 11, width, dtype=torch.float64)
    assert (engine_forward(model, x) - module_forwards(model, x)).abs().max().item() < 1e-10


def test_channels_last_input_and_weights():
    model = tiny(4)
    x = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    ref = module_forwards(model, x)
    # model.to(memory_format=...) refuses the 5-D kernel banks; the conv weights are what it would change
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    out = engine_forward(model, x.contiguous(memory_format=torch.channels_last))
    assert (out - ref).abs().max().item() < 1e-10


def test_probe_finds_the_fused_kernels_and_switch_forces_the_fallback(monkeypatch):
    if not torch.backends.mkldnn.is_available():
        pytest.skip('torch built without oneDNN: only the public-op path exists')
    x = torch.rand(1, 3, 4, 4)
    assert fused.probe()
    assert fused.fused(x) and not fused.fused(x.double())
    with torch.backends.mkldnn.flags(enabled=False):
        assert not fused.fused(x)
    monkeypatch.setattr(fused, 'USE_FUSED', False)
    assert not fused.fused(x)


@pytest.mark.parametrize('scale, width', [(2, 8), (4, 8), (3, 34)])
@pytest.mark.slow
def test_fused_and_public_op_paths_agree_in_float32(scale, width, monkeypatch):
    """float32 runs oneDNN's fused kernels (when the probe passes) or, forced, the public ops; both stay within
    float32 rounding of the float64 module forwards. At width 34 the body runs in strips of 4 rows and its FFT along
    W in two stages."""
    model64 = tiny(scale)
    model = tiny(scale, torch.float32)
    x = torch.rand(2, 3, 11, width)
    monkeypatch.setattr(strips, 'BODY_STRIP_ELEMENTS', 4 * width * 2 * 16)
    exact = module_forwards(model64, x.double())
    with_fused = engine_forward(model, x)
    monkeypatch.setattr(fused, 'USE_FUSED', False)
    public = engine_forward(model, x)
    err_modules = (module_forwards(model, x).double() - exact).abs().max().item()
    # this model's N(0, 1) layer_scale makes float32 itself lose about 1e-3; the engine must not lose more
    for out in (with_fused, public):
        assert (out.double() - exact).abs().max().item() <= 1.5 * err_modules + 1e-6
    assert (with_fused - public).abs().max().item() <= 2 * err_modules + 1e-6


def test_probe_failure_means_public_ops(monkeypatch):
    """A probe that finds no usable kernels (as on a torch without them) sends every call to the public ops."""
    fused.probe.cache_clear()
    monkeypatch.setattr(torch.backends.mkldnn, 'is_available', lambda: False)
    try:
        assert not fused.probe()
        model = tiny(2, torch.float32)
        x = torch.rand(1, 3, 6, 7)
        out = engine_forward(model, x)
        assert (out - module_forwards(model, x)).abs().max().item() < 1e-4
    finally:
        fused.probe.cache_clear()


def test_batch_samples_stay_independent():
    model = tiny(3, torch.float32)
    x = torch.rand(3, 3, 9, 7)
    batched = engine_forward(model, x)
    single = torch.cat([engine_forward(model, x[i:i + 1]) for i in range(3)])
    assert (batched - single).abs().max().item() < 1e-5


def test_not_for_autograd_autocast_tracing_or_other_dtypes():
    """These calls run the module forwards, without a warning: they are not about the network."""
    model = tiny(2, torch.float32)
    x = torch.rand(1, 3, 4, 4)
    with torch.enable_grad():
        assert not engine.accepts(model, x)
    with torch.inference_mode():
        assert not engine.accepts(model, x.half())
        assert not engine.accepts(model, x.double())  # parameters are float32
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not engine.accepts(model, x)
            out = model(x)
    assert out.shape == (1, 3, 8, 8)


def test_basicsr_srmodel_test_runs_the_engine(monkeypatch):
    """BasicSR's validation and test (``SRModel.test``: ``net_g`` under ``torch.no_grad``) go through the engine."""
    from basicsr.models.sr_model import SRModel
    calls = []
    run = engine.run
    monkeypatch.setattr(engine, 'run', lambda model, x: calls.append(x.shape) or run(model, x))
    opt = {'num_gpu': 0, 'dist': False, 'is_train': False, 'path': {},
           'network_g': {'type': 'SRConvNet', 'num_feat': 16, 'num_block': 1, 'num_heads': 4, 'num_kernels': 4,
                         'upscale': 2}}
    model = SRModel(opt)
    lq = torch.rand(1, 3, 6, 5)
    model.feed_data({'lq': lq})
    model.test()
    assert calls == [(1, 3, 6, 5)]
    assert (model.output - module_forwards(model.net_g, lq)).abs().max().item() < 1e-4
