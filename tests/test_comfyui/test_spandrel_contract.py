"""spandrel's contract for an architecture, checked through spandrel's real ModelLoader.

spandrel's own test helper (``assert_loads_correctly`` in its tests/util.py, which model trainers run on their
architectures) is not in the pip package; these are the same checks: the architecture detects its state dicts and
no other does, a state dict, a ``.safetensors`` round trip and the authors' checkpoint layout all load to a model
with equal ``hyperparameters``, equal tensors and equal outputs, and every input size from 1x1 up runs.
"""
import pytest
import torch
from safetensors.torch import save_file
from spandrel import MAIN_REGISTRY, ModelLoader

from comfyui_helpers import authors_checkpoint, srconvnet
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.spandrel_support import install

#: configurations that differ in every constructor argument spandrel has to read back from the shapes
CONFIGS = [
    dict(upscale=2),
    dict(upscale=3, num_feat=24, num_block=2, num_heads=6, num_kernels=3),
    dict(upscale=4, num_feat=8, num_block=3, num_heads=2, num_kernels=2),
    dict(upscale=4, num_in_ch=1, num_out_ch=1),
]


@pytest.fixture(scope='module', autouse=True)
def installed():
    install()


def assert_same_model(loaded, net, what):
    """What spandrel's assert_loads_correctly compares: architecture, hyperparameters, tensors and outputs."""
    assert loaded.architecture.id == 'SRConvNet', what
    assert type(loaded.model) is SRConvNet, what
    assert loaded.model.hyperparameters == net.hyperparameters, what
    assert loaded.scale == net.hyperparameters['upscale'], what
    assert (loaded.input_channels, loaded.output_channels) == (net.hyperparameters['num_in_ch'],
                                                               net.hyperparameters['num_out_ch']), what
    ours, theirs = net.state_dict(), loaded.model.state_dict()
    assert ours.keys() == theirs.keys(), what
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), what
    lq = torch.rand(1, net.hyperparameters['num_in_ch'], 7, 9, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(loaded(lq), net.eval()(lq).clamp(0, 1)), what
    again = ModelLoader().load_from_state_dict(loaded.model.state_dict())  # loading what was loaded is stable
    assert again.model.hyperparameters == net.hyperparameters, what


@pytest.mark.parametrize('config', CONFIGS, ids=lambda c: '-'.join(f'{k}{v}' for k, v in c.items()))
def test_state_dict_safetensors_and_authors_layout_load_to_equal_hyperparameters(config, tmp_path):
    net = srconvnet(seed=5, **config)
    assert set(net.hyperparameters) >= {'num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'num_heads',
                                        'num_kernels', 'upscale'}
    sd = net.state_dict()
    assert_same_model(ModelLoader().load_from_state_dict(sd), net, 'state dict')
    save_file(sd, tmp_path / 'net.safetensors')
    assert_same_model(ModelLoader().load_from_file(tmp_path / 'net.safetensors'), net, 'safetensors')
    torch.save(authors_checkpoint(sd), tmp_path / 'model_latest.pth')
    assert_same_model(ModelLoader().load_from_file(tmp_path / 'model_latest.pth'), net, "authors' layout")


def test_detection_srconvnet_alone_claims_its_state_dicts():
    for config in CONFIGS:
        sd = SRConvNet(**config).state_dict()
        claims = [a.architecture.id for a in MAIN_REGISTRY if a.architecture.detect(sd)]
        assert claims == ['SRConvNet'], (config, claims)


@pytest.mark.parametrize('upscale', [2, 3, 4])
@pytest.mark.slow
def test_every_size_from_1x1_up_runs(upscale):
    model = ModelLoader().load_from_state_dict(srconvnet(upscale, seed=upscale).state_dict())
    assert model.size_requirements.none
    with torch.inference_mode():
        for h in range(1, 7):
            for w in range(1, 7):
                out = model(torch.rand(1, 3, h, w))
                assert out.shape == (1, 3, upscale * h, upscale * w), (h, w)
                assert torch.isfinite(out).all(), (h, w)
