"""Side-by-side comparison of SR architectures: parameters, MACs, latency, memory and Y-PSNR/SSIM.

Usage::

    python -m srconvnet_plugin.compare --scale 2 3 4 --archs SRConvNet SwinIR-light EDSR-baseline SRVGGNetCompact
    python -m srconvnet_plugin.compare --scale 4 --archs SRConvNet SAFMN SPAN OmniSR PLKSR-tiny Compact
    python -m srconvnet_plugin.compare --scale 4 --archs SRConvNet --arch-opt tiny 'type=SRConvNet,num_feat=16'
    python -m srconvnet_plugin.compare --scale 4 --archs SRConvNet EDSR-baseline --gt GT_DIR --lq LQ_DIR \\
        --weights SRConvNet=SRConvNet_x4.pth EDSR-baseline=EDSR_Lx4.pth

Networks are built from BasicSR ``network_g`` dicts through ``basicsr.archs.build_network`` (any arch in
``ARCH_REGISTRY``: ``--arch-opt``), or from spandrel's own arch classes (``type=spandrel.<Name>``) where spandrel is
installed. The modules:

``presets``
    what can be compared: BasicSR's lightweight configurations, spandrel's, the plugin's archs, ``--arch-opt``
    parsing, scale arguments and the input sizes each arch accepts;
``build``
    each (arch, scale) built once, its checkpoint loaded once: a ``Network`` reused for every measurement;
``measure``
    latency timed in alternating rounds, counts (``srconvnet_plugin.measure.complexity``) and memory
    (``srconvnet_plugin.measure.profiling``): one row per network;
``quality``
    Y-PSNR/SSIM on a paired test set, as BasicSR's validation;
``render``
    ``compare.md``, ``compare.csv``, ``compare.json`` and ``compare.png`` in ``--out-dir``;
``cli``
    the command (``srconvnet-compare``, ``python -m srconvnet_plugin.compare``).
"""
import sys

import srconvnet_plugin

# before anything imports yaml or basicsr; while ``python -m srconvnet_plugin.compare`` imports this package on its
# way to ``__main__``, sys.argv[0] is '-m' (Python's documented behaviour): one line and exit 2 then, not a traceback
srconvnet_plugin.require_toolbox('srconvnet-compare', '__main__' if sys.argv[:1] == ['-m'] else None)

from srconvnet_plugin.compare.build import Network, build, construct, load_weights  # noqa: E402
from srconvnet_plugin.compare.cli import build_parser, main, run  # noqa: E402
from srconvnet_plugin.compare.measure import measure, pad_input, run_padded, time_alternating  # noqa: E402
from srconvnet_plugin.compare.presets import (DEFAULT_OUTPUT, PRESETS, SPANDREL_PRESETS, ArchSpec,  # noqa: E402
                                              CompareError, SizeRule, available_archs, default_input_size,
                                              input_channels, opt_for_scale, parse_arch_opt, parse_size,
                                              plugin_archs, registered_archs, resolve_archs, size_rule,
                                              spandrel_available)
from srconvnet_plugin.compare.quality import evaluate_quality, find_pairs  # noqa: E402
from srconvnet_plugin.compare.render import (CSV_FIELDS, OUTPUT_NAMES, csv_text, markdown_table,  # noqa: E402
                                             write_outputs)
