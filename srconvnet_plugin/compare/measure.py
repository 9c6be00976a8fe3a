"""Measuring built networks: latency timed in alternation, then counts and memory of each, one row per network.

Latency: the networks of one scale are timed in rounds; each round runs every network once (``--warmup`` untimed
rounds first), so a change of load on a shared machine hits every network alike. Each network's time relative to a
reference network is the median over the rounds of the ratio of the two times of that round.
"""
import statistics
from collections import OrderedDict

import torch
import torch.nn.functional as F

from srconvnet_plugin.measure.complexity import count_complexity, reparameterised_params, thop_counts
from srconvnet_plugin.measure.profiling import (Latency, cpu_peak_memory_in_fresh_process, cuda_peak_memory,
                                              measure_latency)

#: how the fresh process that measures CPU memory builds a network (the same builder as here)
MEMORY_BUILDER = 'srconvnet_plugin.compare.build:construct'


def pad_input(x, rule):
    """Pad the bottom/right of ``x`` to a size ``rule`` (a ``SizeRule``) accepts: reflect (as BasicSR's
    ``SwinIRModel.test`` and spandrel do), replicate for what reflection cannot reach. Returns (x, pad_h, pad_w)."""
    h, w = x.shape[-2:]
    ph, pw = rule.padded((h, w))
    pad_h, pad_w = ph - h, pw - w
    if pad_h or pad_w:
        reflect_h, reflect_w = min(pad_h, h - 1), min(pad_w, w - 1)
        x = F.pad(x, (0, reflect_w, 0, reflect_h), 'reflect')
        if pad_h > reflect_h or pad_w > reflect_w:
            x = F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), 'replicate')
    return x, pad_h, pad_w


def run_padded(model, x, rule, scale):
    """``model(x)`` with the input padded as ``rule`` says and the output cropped back."""
    padded, pad_h, pad_w = pad_input(x, rule)
    out = model(padded)
    return out[..., :out.shape[-2] - pad_h * scale, :out.shape[-1] - pad_w * scale]


def traced_size(network, input_size):
    """The (H, W) ``network`` is measured at for an LR ``input_size``, and the notes that say why."""
    h, w = input_size
    ph, pw = network.rule.padded(input_size)
    notes = list(network.spec.notes)
    if (ph, pw) != (h, w):
        rule = network.rule
        needs = [f'at least {rule.minimum}' if rule.minimum else '', f'multiple of {rule.multiple}' if rule.multiple > 1
                 else '']
        notes.append(f'input padded {h}×{w}→{ph}×{pw} (reflect, {", ".join(filter(None, needs))}, {rule.why})')
    window = network.rule.window
    if window > 1 and (ph % window or pw % window):
        wh, ww = ph + (-ph) % window, pw + (-pw) % window
        notes.append(f'pads {ph}×{pw}→{wh}×{ww} inside its forward (window {window}), counted and timed so')
    if network.channels == 1:
        notes.append('Y channel only (1-channel in/out)')
    return (ph, pw), notes


def time_alternating(networks, inputs, runs, warmup, device='cpu', progress=None):
    """Time ``network.model(x)`` for each network and its input in rounds: ``warmup`` untimed rounds, then ``runs``
    timed ones, each running every network once (``measure_latency`` per call, synchronised on CUDA). Returns the
    per-round times in ms, one list per network. ``progress`` is called after every round."""
    times = [[] for _ in networks]
    with torch.no_grad():
        for round_ in range(warmup + runs):
            for i, (network, x) in enumerate(zip(networks, inputs)):
                latency = measure_latency(lambda: network.model(x), runs=1, warmup=0, device=device)
                if round_ >= warmup:
                    times[i].extend(latency.times_ms)
            if progress:
                progress()
    return times


def relative_times(times, reference):
    """Per network: the median over the rounds of its time divided by the ``reference``-th network's time."""
    return [statistics.median(t / r for t, r in zip(own, times[reference])) for own in times]


def measure(network, input_size, times, relative, relative_to, device='cpu', memory=True, threads=None):
    """Counts and memory of a built ``Network`` at an LR ``input_size``, with its timed runs ``times`` (ms) and
    its time ``relative`` to the network ``relative_to``: one row of the table (a flat dict)."""
    (ph, pw), notes = traced_size(network, input_size)
    model, opt, scale, shape = network.model, network.opt, network.scale, (network.channels, ph, pw)
    h, w = input_size
    cx = count_complexity(model, shape, device=device)
    params_thop, macs_thop = thop_counts(model, shape, device=device)
    deployed = reparameterised_params(model)
    if deployed is not None:
        notes.append(f'{deployed:,} params once re-parameterised (training-time branches counted in Params)')
    if cx.unsupported:
        notes.append('not counted: ' + ', '.join(f'{k}×{v}' for k, v in cx.unsupported.items()))
    if not memory:
        mem = None
    elif torch.device(device).type == 'cuda':
        x = torch.rand(1, *shape, device=device)
        with torch.no_grad():
            mem = cuda_peak_memory(lambda: model(x), device=device)
    else:  # a fresh process builds its own copy: one network's freed memory cannot hide another's peak
        mem = cpu_peak_memory_in_fresh_process(opt, shape, threads=threads, builder=MEMORY_BUILDER)
    latency = Latency.from_times(times)
    row = OrderedDict(arch=network.spec.name, type=opt['type'], scale=scale, input=f'{h}x{w}',
                      traced_input=f'{ph}x{pw}', output=f'{h * scale}x{w * scale}', params=cx.params,
                      params_deployed=deployed)
    row.update((key, getattr(cx, key)) for key in ('macs', 'macs_extra', 'total_macs', 'other_ops'))
    row.update(params_thop=params_thop, macs_thop=macs_thop)
    row.update((f'latency_{key}', getattr(latency, key)) for key in ('median_ms', 'iqr_ms', 'min_ms', 'max_ms'))
    row.update(latency_relative=relative, relative_to=relative_to, runs=len(times), device=str(device))
    row.update(memory_forward_mb=mem.forward_bytes / 2**20 if mem else None,
               memory_peak_mb=mem.peak_bytes / 2**20 if mem else None, memory_kind=mem.kind if mem else None)
    row.update(psnr_y=None, ssim_y=None, notes='; '.join(notes), options=opt, times_ms=latency.times_ms,
               by_operator=cx.by_operator, unsupported=cx.unsupported)
    return row
