"""Real checkpoint files for the checkpoint tests: good ones in every layout, and the bad ones users meet."""
import os
import pickle

import numpy as np
import torch

from srconvnet.archs.srconvnet_arch import SRConvNet

#: the tiny network of the pipeline tests (tests/test_stack/stack_options.py TINY_NET), at x4
TINY = dict(num_feat=16, num_block=1, num_heads=4, num_kernels=4)


def srconvnet(upscale=4, seed=0, **config):
    """An SRConvNet in eval mode whose layer scales are drawn from N(0, 1), so that the attention branch matters."""
    torch.manual_seed(seed)
    net = SRConvNet(upscale=upscale, **{**TINY, **config})
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith('layer_scale'):
                p.normal_()
    return net.eval()


def authors_checkpoint(state_dict):
    """What the authors' training code saves: DataParallel's ``module.`` prefix on every key, MeanShift included."""
    meanshift = {'sub_mean.weight': torch.eye(3).view(3, 3, 1, 1), 'sub_mean.bias': torch.zeros(3),
                 'add_mean.weight': torch.eye(3).view(3, 3, 1, 1), 'add_mean.bias': torch.zeros(3)}
    return {'epoch': 3, 'model_state_dict': {f'module.{k}': v for k, v in {**meanshift, **state_dict}.items()},
            'optimizer_state_dict': {'state': {}, 'param_groups': []}, 'scheduler_state_dict': {},
            'stat_dict': {'psnr': [30.0]}}


class RunsCodeWhenUnpickled:
    """What a malicious checkpoint carries: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


#: what a user may pass as --weights that is no checkpoint at all: 30 bytes of notes
NOTES = 'these are my notes, no weights'


def bad_files(folder):
    """``{kind: path}`` of the bad checkpoints: truncated ``.pth`` and ``.safetensors``, a pickle holding code (it
    would create ``folder/code_ran``), a whole pickled network (``torch.save(module)``), a real basicsr EDSR x4, an
    SRConvNet x3 (the tests ask for x4), a path where there is no file, and files that are not checkpoints at all: a
    text file (``.pth`` and ``.safetensors``), an empty file, random bytes, a plain pickle of a dict."""
    from basicsr.archs.edsr_arch import EDSR  # here: the other helpers serve core-only tests (test_comfyui)
    from srconvnet.checkpoints import save_state_dict
    good = srconvnet().state_dict()
    save_state_dict(good, folder / 'good.pth')
    save_state_dict(good, folder / 'good.safetensors')
    files = {'truncated': folder / 'net_g_truncated.pth', 'truncated_st': folder / 'net_g_truncated.safetensors',
             'code': folder / 'net_g_code.pth', 'edsr': folder / 'EDSR_Mx4.pth', 'x3': folder / 'SRConvNet_x3.pth',
             'missing': folder / 'no_such_file.pth', 'notes': folder / 'notes.pth',
             'notes_st': folder / 'notes.safetensors',
             'empty': folder / 'empty.pth', 'random': folder / 'random.pth', 'plain_pickle': folder / 'dict.pkl',
             'pickled_net': folder / 'whole_net.pth'}
    files['truncated'].write_bytes((folder / 'good.pth').read_bytes()[:5000])
    files['truncated_st'].write_bytes((folder / 'good.safetensors').read_bytes()[:-100])
    torch.save({'params': good, 'extra': RunsCodeWhenUnpickled(folder / 'code_ran')}, files['code'])
    torch.save(srconvnet(), files['pickled_net'])  # the network object, not its state dict
    files['notes'].write_text(NOTES)
    files['notes_st'].write_text(NOTES)
    files['empty'].write_bytes(b'')
    files['random'].write_bytes(np.random.default_rng(0).bytes(4096))  # begins 5f 82 c2 d9: neither zip nor pickle
    files['plain_pickle'].write_bytes(pickle.dumps({'lr': 1e-3, 'epochs': 10}, protocol=5))
    torch.manual_seed(0)
    torch.save({'params': EDSR(3, 3, num_feat=64, num_block=16, upscale=4).state_dict()}, files['edsr'])
    save_state_dict(srconvnet(upscale=3).state_dict(), files['x3'])
    return files
