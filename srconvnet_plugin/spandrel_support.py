"""The documented name of SRConvNet's spandrel support from before the core moved to
:mod:`srconvnet.spandrel_support`: ``from srconvnet_plugin.spandrel_support import install`` keeps working."""
from srconvnet.spandrel_support import *  # noqa: F401,F403
from srconvnet.spandrel_support import SRConvNetArch, install  # noqa: F401
