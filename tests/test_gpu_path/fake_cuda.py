"""Fake CUDA for the GPU-path tests: tensors on ``'cuda'`` that carry their device and dtype but no data.

Under :func:`fake_cuda` every tensor is a ``FakeTensor`` (``torch._subclasses.fake_tensor``): an op that mixes a CUDA
tensor with a CPU tensor raises as on a GPU (``FakeTensorDeviceMismatchError`` or "Expected all tensors to be on the
same device"), so device placement and dtype flow are checked on a machine without a GPU. What fake tensors cannot
do: decide on data (``.item()``, ``if tensor:``, ``.numpy()``: ``DataDependentOutputException``), the backward pass
(autograd asks for a CUDA context), and ``Module._apply``'s swap of a fake parameter for its converted copy
(``Module.to``, ``.half()``, ...: "Couldn't swap"). :func:`fake_cuda` stands in for two things:

* ``Module._apply``: a module whose tensors are fake gets its converted parameters and buffers put in their places
  (what ``Module._apply`` does for tensors it cannot swap); every other module converts with torch's own code;
* the two questions ``torch.autocast('cuda')`` and ``GradScaler('cuda')`` ask before they switch themselves off on a
  machine without CUDA (``amp_definitely_not_available``, ``torch.cuda.is_bf16_supported``) get a GPU's answers, so
  that fp16 and bf16 autocast really cast the fake CUDA ops (without that, autocast warns and does nothing, and an
  "fp16" check would run fp32). ``torch.cuda.is_available()`` stays False: code that asks it sees this machine.

No default device is set: a tensor made without ``device=`` is made on the CPU, and a module nobody moves stays there,
exactly as on a GPU machine.
"""
import contextlib

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

CUDA = torch.device('cuda', 0)


def _holds_fake(module):
    return any(isinstance(t, FakeTensor) for t in (*module._parameters.values(), *module._buffers.values()))


def _replacing_apply(torch_apply):
    """``Module._apply`` that, for a module holding fake tensors, puts ``fn(tensor)`` in place of each parameter and
    buffer that ``fn`` changes (a new ``Parameter`` with the same ``requires_grad``)."""

    def _apply(self, fn, recurse=True):
        if not _holds_fake(self):
            if recurse:
                for module in self.children():
                    module._apply(fn)
            return torch_apply(self, fn, recurse=False)
        if recurse:
            for module in self.children():
                module._apply(fn)
        for key, param in self._parameters.items():
            if param is None:
                continue
            with torch.no_grad():
                applied = fn(param)
            if applied is not param:
                self._parameters[key] = nn.Parameter(applied, requires_grad=param.requires_grad)
        for key, buf in self._buffers.items():
            if buf is not None:
                self._buffers[key] = fn(buf)
        return self

    return _apply


def _false():
    return False


def _true(*args, **kwargs):
    return True


@contextlib.contextmanager
def fake_cuda():
    """Fake tensors (real tensors that enter are faked on their own device) with the ``Module._apply`` stand-in;
    yields the ``FakeTensorMode``."""
    amp_common = torch.cuda.amp.common
    saved = nn.Module._apply, amp_common.amp_definitely_not_available, torch.cuda.is_bf16_supported
    nn.Module._apply = _replacing_apply(saved[0])
    amp_common.amp_definitely_not_available = _false
    torch.cuda.is_bf16_supported = _true
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            yield mode
    finally:
        nn.Module._apply, amp_common.amp_definitely_not_available, torch.cuda.is_bf16_supported = saved


def same_device(a, b):
    """Whether devices ``a`` and ``b`` are one (``cuda`` is ``cuda:0``, as on a one-GPU machine)."""
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def misplaced(device, **holders):
    """``'name.tensor (device)'`` for every parameter and buffer of the modules in ``holders`` (name: module) that is
    not on ``device``, and every tensor given directly that is not."""
    found = []
    for name, holder in holders.items():
        if isinstance(holder, torch.Tensor):
            tensors = [('', holder)]
        else:
            tensors = [*holder.named_parameters(), *holder.named_buffers()]
        for key, tensor in tensors:
            if not same_device(tensor.device, device):
                found.append(f'{name}{"." if key else ""}{key} ({tensor.device})')
    return found


def assert_on(device, **holders):
    """Raise ``AssertionError`` naming every parameter, buffer or tensor of ``holders`` not on ``device``."""
    found = misplaced(device, **holders)
    assert not found, f'not on {device}: {", ".join(found[:8])}' + (f' and {len(found) - 8} more' if len(found) > 8
                                                                     else '')
