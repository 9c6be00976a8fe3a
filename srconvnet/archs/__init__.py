"""The network: ``srconvnet_arch.SRConvNet`` (torch alone; the BasicSR toolbox registers it, see
``srconvnet_plugin.archs``)."""
