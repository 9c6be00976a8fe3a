"""The engine runs only the stock SRConvNet; any ablation runs its own module forwards, after one warning.

Each ablation is made on a small model; the output without autograd (where the engine would run) must equal the
ablated model's output with autograd (its module forwards, what training computes) and differ from the stock one.
"""
import warnings

import pytest
import torch
from torch import nn

import srconvnet.engine as engine
from engine_models import module_forwards, tiny
from srconvnet.archs.srconvnet_arch import MixFFN
from srconvnet.engine import EngineStepsAside, guard


class DoubledDML(MixFFN):
    """A DML subclass with its own forward (an ablation a user might write)."""

    def forward(self, x):
        return super().forward(x) * 2 - x


class PlainFourier(nn.Module):
    """A Fourier unit replaced by a module without the attributes the engine reads (no ``conv_layer``)."""

    def forward(self, x):
        return torch.tanh(x)


def _identity_dml(model):
    model.blocks[0].ffn = nn.Identity()


def _relu_upsampler(model):
    model.upsampling[2] = nn.ReLU()


def _tanh_gelu(model):
    model.blocks[1].ffn.act = nn.GELU(approximate='tanh')


def _subclassed_dml(model):
    dml = DoubledDML(16, 4).double()
    dml.load_state_dict(model.blocks[1].ffn.state_dict())
    model.blocks[1].ffn = dml


def _instance_forward(model):
    conv = model.blocks[0].attention.v
    conv.forward = lambda x: nn.Conv2d.forward(conv, x) * 0.5


def _no_attributes(model):
    model.blocks[0].attention.a = PlainFourier()


def _bigger_cpe(model):
    model.blocks[0].attention.CPE = nn.Conv2d(16, 16, 5, padding=2, groups=16).double()


def _no_attention(model):
    model.blocks[0].attention = nn.Identity()


def _no_to_feat(model):
    model.to_feat = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GELU()).double()


ABLATIONS = {
    'attention removed': (_no_attention, 'blocks.0.attention is Identity, not FConvMod'),
    'first conv without its attributes': (_no_to_feat, "its sizes cannot be read as an SRConvNet's"),
    'identity DML': (_identity_dml, 'blocks.0.ffn is Identity, not MixFFN'),
    'ReLU in the upsampler': (_relu_upsampler, 'upsampling.2 is ReLU, not GELU'),
    'tanh GELU': (_tanh_gelu, "blocks.1.ffn.act has approximate='tanh'"),
    'DML subclass': (_subclassed_dml, 'blocks.1.ffn is DoubledDML, not MixFFN'),
    'forward on an instance': (_instance_forward, 'blocks.0.attention.v has a forward set on the instance'),
    'module without the attributes': (_no_attributes, 'blocks.0.attention.a is PlainFourier, not FourierUnit'),
    'other kernel size': (_bigger_cpe, 'blocks.0.attention.CPE has kernel_size=(5, 5)'),
}


@pytest.mark.parametrize('ablation', list(ABLATIONS))
def test_ablation_steps_aside_with_one_warning_and_the_ablated_output(ablation):
    edit, message = ABLATIONS[ablation]
    model = tiny(2)
    x = torch.rand(2, 3, 7, 6, dtype=torch.float64)
    stock = module_forwards(model, x)
    edit(model)
    expected = module_forwards(model, x)
    with torch.no_grad():
        with pytest.warns(EngineStepsAside, match='steps aside: ' + message.replace('(', r'\(').replace(')', r'\)')):
            out = model(x)
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # once per model
            again = model(x)
    assert (out - expected).abs().max().item() == 0
    assert (again - expected).abs().max().item() == 0
    assert (expected - stock).abs().max().item() > 0  # the ablation changes the output (tanh GELU: by ~1e-7)


def test_edited_source_steps_aside(monkeypatch):
    """A class whose code differs from what the engine was written for (here: the engine's record of it edited)."""
    monkeypatch.setitem(guard.FINGERPRINTS, 'MixFFN', '0' * 16)
    model = tiny(3)
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    with torch.no_grad(), pytest.warns(EngineStepsAside, match='the code of MixFFN is not the code the engine'):
        assert not engine.accepts(model, x)
    assert (model(x) - module_forwards(model, x)).abs().max().item() == 0


def test_fingerprint_changes_with_the_code_not_with_comments():
    from srconvnet.archs import srconvnet_arch as arch

    def forward(self, x):
        """Docstring."""
        return self.ffn(self.attention(x))  # a comment

    def edited(self, x):
        return self.ffn(self.attention(x)) + x

    original = arch.BasicBlock.forward
    try:
        arch.BasicBlock.forward = forward
        same = guard.fingerprints()['BasicBlock']
        arch.BasicBlock.forward = edited
        different = guard.fingerprints()['BasicBlock']
    finally:
        arch.BasicBlock.forward = original
    assert same == guard.FINGERPRINTS['BasicBlock'] != different


def test_fingerprints_pinned():
    """The engine was checked against these modules. If this fails, srconvnet_arch.py changed: make the engine compute
    the edited modules' numbers (tests/test_engine), then copy ``guard.fingerprints()`` into ``guard.FINGERPRINTS``."""
    assert set(guard.FINGERPRINTS) == set(guard.engine_classes())
    assert guard.fingerprints() == guard.FINGERPRINTS


def test_forward_hook_inside_steps_aside_and_fires():
    model = tiny(3)
    x = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    seen = []
    model.blocks[1].ffn.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad(), pytest.warns(EngineStepsAside, match='blocks.1.ffn has a forward hook'):
        out = model(x)
    assert seen == [(2, 16, 6, 5)]
    assert (out - module_forwards(model, x)).abs().max().item() == 0


def test_hook_on_the_network_itself_keeps_the_engine():
    model = tiny(2)
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('error')
        assert engine.accepts(model, x)
        model(x)
    assert seen == [(1, 3, 8, 8)]


def test_stock_models_of_other_sizes_are_accepted():
    from srconvnet.archs.srconvnet_arch import SRConvNet
    for kwargs in ({'upscale': 4}, {'num_feat': 24, 'num_heads': 3, 'num_block': 3, 'upscale': 3},
                   {'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_heads': 2, 'num_kernels': 2, 'upscale': 2}):
        model = SRConvNet(**kwargs).eval()
        assert guard.first_difference(model) is None, kwargs
