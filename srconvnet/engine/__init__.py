"""SRConvNet's inference engine: the stock network's numbers, computed faster on CPU without autograd.

``SRConvNet.forward`` calls ``accepts(model, x)`` when autograd is off and, if it returns True, ``run(model, x)``.
The engine runs the body strip by strip (``strips``: the Fourier unit's FFT split into 1-D FFTs on row and column
strips, along awkward widths as two matrix products, ``real_dft``; the softmax and the dynamic convs' average
accumulated strip by strip), the upsampler and tail on the LR grid with the tail conv split into taps (``tail``), in
place, with oneDNN's fused float32 kernels where a capability probe finds them (``fused``). It applies only to the
stock SRConvNet (``guard``); any other network, e.g. an ablation, runs its own module forwards after one
``EngineStepsAside`` warning naming the difference.
"""
from srconvnet.engine.guard import EngineStepsAside, accepts, first_difference, fingerprints
from srconvnet.engine.network import run

__all__ = ['EngineStepsAside', 'accepts', 'first_difference', 'fingerprints', 'run']
