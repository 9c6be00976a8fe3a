"""Small SRConvNets for the engine tests."""
import torch

from srconvnet.archs.srconvnet_arch import SRConvNet


def tiny(scale, dtype=torch.float64, seed=None):
    """A small SRConvNet whose every branch matters: layer_scale ~ N(0, 1), biases and norm weights perturbed."""
    torch.manual_seed(scale if seed is None else seed)
    model = SRConvNet(num_feat=16, num_block=2, num_heads=4, num_kernels=4, upscale=scale).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('layer_scale'):
                p.normal_()
            elif name.endswith('bias') or name.endswith('norm.weight'):
                p.add_(0.1 * torch.randn_like(p))
    return model


def golden_srconvnet(golden):
    """A float64 SRConvNet in eval mode with a golden file's config and weights (MeanShift values dropped)."""
    cfg = golden['config']
    model = SRConvNet(num_feat=cfg['dim'], num_block=cfg['num_blocks'], num_heads=cfg['num_heads'],
                      num_kernels=cfg['num_kernels'], upscale=cfg['scale']).double().eval()
    state = {k: v for k, v in golden['state_dict'].items() if not k.startswith(('sub_mean.', 'add_mean.'))}
    model.load_state_dict(state, strict=True)
    return model


def module_forwards(model, x):
    """``model(x)`` through the module forwards (what training runs: autograd on, so the engine never does)."""
    with torch.enable_grad():
        return model(x).detach()
