"""Test with BasicSR's own pipeline: ``python -m srconvnet_plugin.test -opt X.yml`` (console script
``srconvnet-test``), with every flag of ``basicsr/test.py``.

Results (``results/<name>/``: log, ``visualization/``) go under the current working directory.
"""
import argparse
import os

import srconvnet_plugin  # noqa: F401  (torchvision alias before basicsr, registers SRConvNet)
from srconvnet_plugin.compat import DataFaultError, apply_pipeline_shims
from srconvnet_plugin.faults import TrainingStopped
from srconvnet_plugin.options import OptionFileError

apply_pipeline_shims()

from basicsr.test import test_pipeline  # noqa: E402


def main():
    """Run ``basicsr.test.test_pipeline`` with root_path = the current working directory."""
    try:
        test_pipeline(os.getcwd())
    except OptionFileError as e:
        argparse.ArgumentParser(prog='srconvnet-test').exit(2, f'srconvnet-test: error: {e}\n')
    except (TrainingStopped, DataFaultError) as e:  # a fault, named; what was saved before is complete
        parser = argparse.ArgumentParser(prog='srconvnet-test')
        parser.exit(getattr(e, 'exit_code', 1), f'srconvnet-test: error: {e}\n')


if __name__ == '__main__':
    main()
