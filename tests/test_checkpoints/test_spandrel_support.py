"""spandrel's own ModelLoader loads SRConvNet (after install()) from every layout, and its outputs equal ours."""
import pytest
import spandrel
import torch
from spandrel import ArchRegistry, ModelLoader, ModelTiling, UnsupportedModelError

from checkpoint_files import TINY, authors_checkpoint, srconvnet
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.checkpoints import save_state_dict
from srconvnet.spandrel_support import SRConvNetArch, install


@pytest.fixture(scope='module', autouse=True)
def installed():
    install()


def ours(net, lq):
    """Our network's output as spandrel hands it out (clamped to [0, 1])."""
    with torch.inference_mode():
        return net.eval()(lq).clamp(0, 1)


def test_spandrel_knows_no_srconvnet_without_install_and_no_other_arch_claims_it():
    sd = srconvnet().state_dict()
    others = ArchRegistry()
    others.add(*[a for a in spandrel.MAIN_REGISTRY if a.architecture.id != 'SRConvNet'])
    for state_dict in [sd] + [SRConvNet(upscale=s).state_dict() for s in (2, 3, 4)]:  # tiny and the paper's size
        with pytest.raises(UnsupportedModelError):
            others.load(state_dict)  # so registering SRConvNet last cannot be shadowed by another arch's detect
    assert install(others) and not install(others)  # added once; a second install adds nothing
    assert others.load(sd).architecture.id == 'SRConvNet'
    assert 'SRConvNet' in spandrel.MAIN_REGISTRY


@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_basicsr_pth_params_ema_is_preferred_and_outputs_equal_ours(upscale, tmp_path):
    raw, ema = srconvnet(upscale, seed=1), srconvnet(upscale, seed=2)
    torch.save({'params': raw.state_dict(), 'params_ema': ema.state_dict()}, tmp_path / 'net_g_1000.pth')
    torch.save({'params': raw.state_dict()}, tmp_path / 'params_only.pth')
    lq = torch.rand(1, 3, 12, 10)
    for name, net in (('net_g_1000.pth', ema), ('params_only.pth', raw)):
        model = ModelLoader().load_from_file(tmp_path / name)
        assert isinstance(model.model, SRConvNet) and model.architecture.id == 'SRConvNet'
        assert (model.scale, model.input_channels, model.output_channels, model.purpose) == (upscale, 3, 3, 'SR')
        assert torch.equal(model(lq), ours(net, lq)), name


@pytest.mark.filterwarnings('ignore:`torch.jit.load` is deprecated:FutureWarning')  # spandrel tries TorchScript on .pt
def test_authors_checkpoint_layout_reproduces_the_reference(golden_dir, tmp_path):
    golden = torch.load(golden_dir / 'srconvnet_x4_small_a.pt', weights_only=True)
    # the authors' file: model_state_dict, module. prefixes, MeanShift entries (in the golden state dict already)
    ckpt = authors_checkpoint({})
    ckpt['model_state_dict'] = {f'module.{k}': v for k, v in golden['state_dict'].items()}
    torch.save(ckpt, tmp_path / 'model_x4_latest.pt')
    model = ModelLoader().load_from_file(tmp_path / 'model_x4_latest.pt')
    assert model.scale == 4 and model.tags == ['16nf', '2nb', '4nh', '4nk']
    net = model.model.double()
    with torch.inference_mode():
        out = net(golden['input'] / 255.) * 255.
    assert (out - golden['output']).abs().max().item() < 1e-8


def test_safetensors_outputs_equal_ours(tmp_path):
    net = srconvnet(3, seed=3)
    save_state_dict(net.state_dict(), tmp_path / 'SRConvNet_x3.safetensors')
    model = ModelLoader().load_from_file(tmp_path / 'SRConvNet_x3.safetensors')
    lq = torch.rand(1, 3, 9, 14)
    assert model.scale == 3 and torch.equal(model(lq), ours(net, lq))


def test_descriptor_advice_half_bfloat16_tiling_and_sizes():
    net = srconvnet(4, seed=4)
    model = ModelLoader().load_from_state_dict(net.state_dict())
    assert model.tiling is ModelTiling.DISCOURAGED  # global softmax and FFT: tiles change the output
    assert model.size_requirements.none
    assert model.supports_half and model.supports_bfloat16
    lq = torch.rand(1, 3, 16, 12)
    reference = model(lq)
    for dtype, tolerance in ((torch.float16, 5e-3), (torch.bfloat16, 3e-2)):
        low = ModelLoader().load_from_state_dict(net.state_dict()).to(dtype)
        out = low(lq.to(dtype))
        assert out.dtype == dtype and out.shape == reference.shape
        assert (out.float() - reference).abs().max().item() < tolerance, dtype
    for h, w in ((1, 1), (1, 3), (2, 2), (5, 1)):  # no minimum size
        assert model(torch.rand(1, 3, h, w)).shape == (1, 3, 4 * h, 4 * w)


def test_other_architectures_are_not_detected_as_srconvnet():
    from basicsr.archs.edsr_arch import EDSR
    from basicsr.archs.rrdbnet_arch import RRDBNet
    arch = SRConvNetArch()
    assert not arch.detect(EDSR(3, 3, num_feat=16, num_block=2).state_dict())
    assert not arch.detect(RRDBNet(3, 3, num_feat=16, num_block=1, num_grow_ch=8).state_dict())
    assert arch.detect({f'module.{k}': v for k, v in SRConvNet(upscale=2, **TINY).state_dict().items()})
