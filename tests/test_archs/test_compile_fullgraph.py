"""The whole training forward of SRConvNet compiles with ``torch.compile(fullgraph=True)`` on CPU: no graph break.

Dynamo raises at the first graph break under ``fullgraph=True``, whatever the backend; ``aot_eager`` also traces the
backward (AOTAutograd) without generating kernels, which keeps this test to seconds. The compiled step must compute
the module forwards' loss and gradients.
"""
import pytest
import torch
import torch.nn.functional as F

from srconvnet.archs.srconvnet_arch import SRConvNet

pytestmark = pytest.mark.slow


def test_training_forward_compiles_without_a_graph_break():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = SRConvNet(num_feat=16, num_block=1, num_heads=4, num_kernels=2, upscale=2).train()
    lq, gt = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager')
    grads = []
    for forward in (model, compiled):
        model.zero_grad(set_to_none=True)
        loss = F.l1_loss(forward(lq), gt)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss, expected), (compiled_loss, got) = grads
    assert torch.allclose(compiled_loss, loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
