"""The exportable form and the ONNX export: the factored DFTs are the orthonormal FFTs, the form equals the module
forwards (float64 1e-10, float32 1e-5) for the stock network and edited ones, ``torch.export`` keeps batch, height
and width dynamic, ONNX Runtime reproduces PyTorch at any batch and size, and the command line refuses in one line."""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from skimage import data
from torch import nn

from conftest import REPO_ROOT
from srconvnet.archs.srconvnet_arch import MixFFN, SRConvNet
from srconvnet.engine import EngineStepsAside
from srconvnet.engine.real_dft import factor_pair, factored_complex_dft, factored_real_dft
from srconvnet.export import TARGETS, ExportError, export, export_program, exportable_form, main
from srconvnet.export.common import SCALE_KEY, TARGET_KEY
from srconvnet.export.exportable import ExportableFourierUnit, ExportableKernelAggregation, ExportableSRConvNet


def tiny_model(upscale=3, dtype=torch.float32):
    """A small SRConvNet whose every branch matters (layer_scale ~ N(0, 1), biases and norm weights perturbed)."""
    torch.manual_seed(upscale)
    model = SRConvNet(num_feat=16, num_block=2, num_heads=4, num_kernels=4, upscale=upscale)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('layer_scale'):
                p.normal_()
            elif name.endswith('bias') or name.endswith('norm.weight'):
                p.add_(0.1 * torch.randn_like(p))
    return model.to(dtype).eval()


def module_forwards(model, x):
    """``model(x)`` through the module forwards (autograd on: the engine never runs)."""
    with torch.enable_grad():
        return model(x).detach()


class DoubledDML(MixFFN):
    """A DML subclass with its own forward (an edit a user might make)."""

    def forward(self, x):
        return super().forward(x) * 2 - x


def identity_dml(model):
    model.blocks[0].ffn = nn.Identity()
    return 'blocks.0.ffn is Identity, not MixFFN'


def subclassed_dml(model):
    dml = DoubledDML(16, 4).to(model.tail.weight.dtype)
    dml.load_state_dict(model.blocks[1].ffn.state_dict())
    model.blocks[1].ffn = dml
    return 'blocks.1.ffn is DoubledDML, not MixFFN'


def tanh_gelu(model):
    model.blocks[1].ffn.act = nn.GELU(approximate='tanh')
    return "blocks.1.ffn.act has approximate='tanh'"


EDITS = {'identity DML': identity_dml, 'DML subclass': subclassed_dml, 'tanh GELU': tanh_gelu}


def edited_model(edit, upscale=3, dtype=torch.float32):
    model = tiny_model(upscale, dtype)
    return model, EDITS[edit](model)


def photo(h, w, y=60, x=150, n=1):
    """Crops of the chelsea photograph as an n×3×h×w float tensor in [0, 1] (image i shifted by 7·i pixels)."""
    crops = [data.chelsea()[y + 7 * i:y + 7 * i + h, x:x + w].transpose(2, 0, 1) for i in range(n)]
    return torch.from_numpy(np.stack(crops).astype(np.float32) / 255)


@pytest.mark.parametrize('n', [1, 2, 3, 7, 12, 16, 17, 20, 30, 64, 97, 427])
def test_factored_dfts_are_the_orthonormal_ffts(n):
    """Float64, lengths with even and odd factors, primes (one dense stage) and 1: the real transform holds in slot
    (g, m) the frequency min(g + Q·m, n − g − Q·m) ≤ n/2 (some twice) and inverts like irfft (imaginary parts of 0 and
    n/2 ignored); the complex one gives every frequency once."""
    x = torch.randn(n, 5, dtype=torch.float64)
    p, q, groups, s1, s2, i2, i1 = factored_real_dft(n, torch.float64)
    assert p * q == n and (n < 4 or n in (7, 17, 97) or 1 < q < n)  # composite lengths are split
    spec = torch.matmul(s2, (s1 @ x.view(q, -1)).view(groups, 2 * p, 5)).view(groups, 2, p, 5)
    k = torch.arange(groups)[:, None] + q * torch.arange(p)[None, :]
    r = torch.minimum(k, n - k)
    expected = torch.fft.rfft(x, dim=0, norm='ortho')[r]  # groups × p × 5
    assert torch.allclose(spec[:, 0], expected.real, atol=1e-12)
    assert torch.allclose(spec[:, 1], expected.imag, atol=1e-12)
    # any spectrum held in the slots (a frequency held twice, the same value twice) inverts as irfft does
    z = torch.complex(torch.randn(n // 2 + 1, 5, dtype=torch.float64), torch.randn(n // 2 + 1, 5, dtype=torch.float64))
    held = torch.stack((z[r].real, z[r].imag), 1)
    back = i1 @ torch.matmul(i2, held.reshape(groups, 2 * p, 5)).view(2 * groups, -1)
    assert torch.allclose(back.view(n, 5), torch.fft.irfft(z, n=n, dim=0, norm='ortho'), atol=1e-12)

    c = torch.randn(2, n, 5, dtype=torch.float64)
    p, q, f1, f2, b2, b1 = factored_complex_dft(n, torch.float64)
    spec = torch.matmul(f2, (f1 @ c.view(2 * q, -1)).view(q, 2 * p, 5)).view(q, 2, p, 5)
    freq = (torch.arange(q)[:, None] + q * torch.arange(p)[None, :]).flatten()
    expected = torch.fft.fft(torch.complex(c[0], c[1]), dim=0, norm='ortho')[freq].view(q, p, 5)
    assert torch.allclose(spec[:, 0], expected.real, atol=1e-12)
    assert torch.allclose(spec[:, 1], expected.imag, atol=1e-12)
    back = b1 @ torch.matmul(b2, spec.reshape(q, 2 * p, 5)).view(2 * q, -1)
    assert torch.allclose(back.view(2, n, 5), c, atol=1e-12)


def test_split_chosen_in_the_program_is_the_static_split():
    """``factor_pair`` of a symbolic size (an exported program's) picks the split a Python int gets, at every
    length up to 130 and the 720p-output sides."""

    class Split(nn.Module):
        def forward(self, x):
            return torch.stack([torch.full((), s) for w in (1, 2) for s in factor_pair(x.shape[0], w)])

    program = torch.export.export(Split(), (torch.zeros(12), ),
                                  dynamic_shapes={'x': {0: torch.export.Dim('n', min=1, max=4096)}})
    for n in list(range(1, 131)) + [180, 240, 320, 360, 427, 640]:
        got = program.module()(torch.zeros(n)).tolist()
        assert got == [*factor_pair(n, 1), *factor_pair(n, 2)], n


SIZES = [(7, 9), (1, 1), (12, 5), (2, 30), (17, 34)]


@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_form_of_the_stock_network_matches_module_forwards(upscale):
    """Float64 within 1e-10 and float32 within 1e-5 of the module forwards; batches of 1 and 2, odd, prime and
    1-pixel sides."""
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        model = tiny_model(upscale, dtype)
        form = exportable_form(model).to(dtype)
        assert isinstance(form, ExportableSRConvNet)
        for n in (1, 2):
            for h, w in SIZES:
                x = torch.rand(n, 3, h, w, dtype=dtype)
                expected = module_forwards(model, x)
                with torch.no_grad():
                    got = form(x)
                assert got.shape == expected.shape == (n, 3, upscale * h, upscale * w)
                assert (got - expected).abs().max().item() < tolerance, (dtype, n, h, w)


@pytest.mark.parametrize('edit', list(EDITS))
def test_form_of_an_edited_network_runs_its_module_forwards(edit):
    """An edited network: one warning naming the difference; its stock Fourier units and kernel banks run as
    real-arithmetic modules, every other module its own forward; equal to the edited module forwards."""
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        model, message = edited_model(edit, dtype=dtype)
        with pytest.warns(EngineStepsAside, match=message.replace('(', r'\(').replace(')', r'\)')):
            form = exportable_form(model)
        form = form.to(dtype)
        kinds = [type(m) for m in form.modules()]
        assert kinds.count(ExportableFourierUnit) == 2
        assert kinds.count(ExportableKernelAggregation) == (2 if edit == 'identity DML' else 4)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', EngineStepsAside)  # the engine steps aside for the form too
            for n, (h, w) in ((1, (7, 9)), (2, (12, 5)), (1, (1, 1))):
                x = torch.rand(n, 3, h, w, dtype=dtype)
                expected = module_forwards(model, x)
                with torch.no_grad():
                    assert (form(x) - expected).abs().max().item() < tolerance, (dtype, n, h, w)
    assert isinstance(model.blocks[0].attention.a, torch.nn.Module) and not isinstance(
        model.blocks[0].attention.a, ExportableFourierUnit)  # the model itself is not changed


@pytest.mark.slow
def test_exported_program_keeps_batch_height_and_width_dynamic():
    """One ``torch.export`` program (traced at 2×3×32×40) runs other batches and sizes, prime and 1-pixel sides
    included, within 1e-5 of the module forwards: the DFT split is chosen in the program."""
    model = tiny_model(3)
    program = export_program(model)
    assert not any('complex' in str(node.meta.get('val', '')) for node in program.graph.nodes)
    run = program.module()
    for n, h, w in [(1, 7, 9), (3, 12, 20), (2, 1, 1), (1, 17, 34)]:
        x = torch.rand(n, 3, h, w)
        assert (run(x) - module_forwards(model, x)).abs().max().item() < 1e-5, (n, h, w)


def check_onnx_runtime(path, model, sizes, batches=(1, 2)):
    """ONNX Runtime's outputs for photo crops of every size and batch within 1e-4 of ``model``'s."""
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    s = model.upscale
    for n in batches:
        for h, w in sizes:
            lq = photo(h, w, n=n)
            expected = module_forwards(model, lq).numpy()
            (got, ) = session.run(None, {'lq': lq.numpy()})
            assert got.shape == (n, 3, s * h, s * w)
            assert np.abs(got - expected).max() < 1e-4, (n, h, w)


NO_OPENCV = textwrap.dedent('''
    import sys
    sys.modules['cv2'] = None  # import cv2 raises ImportError, as in an install without the infer extra
    sys.modules['tqdm'] = None
    from srconvnet.export import main
    main(sys.argv[1:])
''')


@pytest.fixture(scope='module')
def exported_x3(tmp_path_factory):
    """A tiny x3 network, its checkpoint, and the portable ONNX file the command line wrote from it in a process
    where OpenCV and tqdm cannot be imported (exporting reads no image)."""
    folder = tmp_path_factory.mktemp('export_x3')
    model = tiny_model(3)
    weights = folder / 'net_g_x3.pth'
    torch.save({'params_ema': model.state_dict()}, weights)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, '-c', NO_OPENCV, '--weights', str(weights), str(folder / 'sr_x3.onnx')],
                            capture_output=True, text=True, env=env, cwd=folder)
    assert result.returncode == 0, result.stderr
    return model, weights, folder / 'sr_x3.onnx', result.stdout


@pytest.mark.slow
def test_onnx_dynamic_batch_height_width(exported_x3):
    model, _, path, stdout = exported_x3
    assert 'x3' in stdout and 'Nx3xHxW' in stdout
    graph = onnx.load(str(path))
    assert [n.op_type for n in graph.graph.node] == ['Scan']  # one image at a time, any batch
    assert [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim] == ['batch', 'channels',
                                                                                      'height', 'width']
    assert {p.key: p.value for p in graph.metadata_props} == {SCALE_KEY: '3', TARGET_KEY: 'portable'}
    assert 'ai.onnx' in {f.domain or 'ai.onnx' for f in graph.opset_import}
    # none is the export's sample size (32×40); odd sides, primes, a single pixel
    check_onnx_runtime(path, model, [(20, 24), (7, 9), (33, 17), (1, 1)])


@pytest.mark.slow
def test_cli_refusals_in_one_line(exported_x3, tmp_path, capsys):
    model, weights, path, _ = exported_x3
    # an existing file is not replaced unless told to (the CLI's main, in this process), before any export
    before = path.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(['--weights', str(weights), str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(path) in err and err.count('\n') == 1
    assert path.read_bytes() == before
    with pytest.raises(FileExistsError, match='sr_x3.onnx'):
        export(model, path)
    # a bad --input-size, a scale that disagrees with the checkpoint, a missing checkpoint
    for args, message in ((['--input-size', '20by30'], '--input-size must be HxW'),
                          (['--scale', '4'], '--scale 4 disagrees with'),
                          (['--weights', str(tmp_path / 'none.pth')], 'none.pth')):
        argv = ['--weights', str(weights), str(tmp_path / 'a.onnx')] + args
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and message in err and err.count('\n') == 1, err
    assert not (tmp_path / 'a.onnx').exists()
    with pytest.raises(ExportError, match="unknown export target 'tensorrt'; choose one of portable"):
        export(model, tmp_path / 'a.onnx', target='tensorrt')
    assert set(TARGETS) >= {'portable', 'onnxruntime-cpu'}


@pytest.mark.slow
@pytest.mark.parametrize('upscale', [2, 4])
def test_onnx_other_scales(tmp_path, upscale):
    model = tiny_model(upscale)
    export(model, tmp_path / 'net.onnx')
    check_onnx_runtime(tmp_path / 'net.onnx', model, [(11, 6), (1, 3)])


@pytest.mark.slow
def test_edited_network_exports_through_its_module_forwards(tmp_path):
    """An ablation (no DML in block 0) is not the stock network: its module forwards are exported, after a warning,
    and ONNX Runtime and OpenVINO (one thread) match them with any batch; a module that torch.export cannot capture
    (Python control flow on a tensor's value) stops the export with one line."""
    model, message = edited_model('identity DML')
    with pytest.warns(EngineStepsAside, match=message):
        export(model, tmp_path / 'ablation.onnx')
    check_onnx_runtime(tmp_path / 'ablation.onnx', model, [(9, 11), (1, 1)])
    lq = photo(10, 7, n=2)
    one_thread_f32 = {'INFERENCE_NUM_THREADS': 1, 'INFERENCE_PRECISION_HINT': 'f32'}
    got = openvino_outputs(tmp_path / 'ablation.onnx', lq, one_thread_f32)
    assert np.abs(got - module_forwards(model, lq).numpy()).max() < 1e-4

    class DataDependentUnit(nn.Module):
        def forward(self, x):
            return x if x.abs().max() > 1 else -x  # Python control flow on a value: torch.export refuses it

    model.blocks[1].attention.a = DataDependentUnit()
    with pytest.warns(EngineStepsAside), pytest.raises(ExportError, match='cannot be captured by torch.export'):
        export(model, tmp_path / 'edited.onnx')
    assert not (tmp_path / 'edited.onnx').exists()


def test_missing_package_is_one_line(tmp_path, capsys, monkeypatch):
    """Without onnxscript (the exporter's ONNX builder) the command line names the extra to install, exit 2, before
    any work."""
    weights = tmp_path / 'x2.pth'
    torch.save({'params': tiny_model(2).state_dict()}, weights)
    monkeypatch.setitem(sys.modules, 'onnxscript', None)  # import onnxscript raises ImportError
    with pytest.raises(SystemExit) as exit_info:
        main(['--weights', str(weights), str(tmp_path / 'a.onnx')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and "the portable target needs the onnxscript package" in err
    assert "pip install 'srconvnet-plugin[onnx]'" in err and not (tmp_path / 'a.onnx').exists()


def openvino_outputs(path, lq, config):
    """OpenVINO's CPU plugin's output for ``lq`` from the ONNX file at ``path``, as an application runs it."""
    ov = pytest.importorskip('openvino')
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), 'CPU', config)
    return compiled(lq.numpy())[0]


@pytest.mark.slow
def test_openvino_runs_the_portable_graph(exported_x3):
    """OpenVINO's CPU plugin compiles the portable graph with its defaults and on one thread (where it fuses the
    attention into one kernel), within 1e-4 of PyTorch under an f32 precision hint and within 2/255 under the
    defaults (bf16 on CPUs that have it), at batches 1 and 2 and two sizes without re-export."""
    model, _, path, _ = exported_x3
    for n, (h, w) in ((1, (20, 24)), (2, (13, 9))):
        lq = photo(h, w, n=n)
        expected = module_forwards(model, lq).numpy()
        for config, tolerance in (({}, 2 / 255), ({'INFERENCE_NUM_THREADS': 1}, 2 / 255),
                                  ({'INFERENCE_PRECISION_HINT': 'f32'}, 1e-4),
                                  ({'INFERENCE_NUM_THREADS': 1, 'INFERENCE_PRECISION_HINT': 'f32'}, 1e-4)):
            got = openvino_outputs(path, lq, config)
            assert got.shape == expected.shape
            assert np.abs(got - expected).max() < tolerance, (config, n, h, w)
