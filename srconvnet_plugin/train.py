"""Train with BasicSR's own pipeline: ``python -m srconvnet_plugin.train -opt X.yml`` (console script
``srconvnet-train``), with every flag of ``basicsr/train.py`` (``--launcher``, ``--auto_resume``, ``--debug``,
``--force_yml``, ``--local_rank``/``--local-rank``).

Outputs (``experiments/``, ``tb_logger/``) go under the current working directory. Multi-GPU / multi-node:
``torchrun --nproc_per_node N -m srconvnet_plugin.train -opt X.yml --launcher pytorch`` (``scripts/dist_train.sh``).
"""
import argparse
import os

import srconvnet_plugin  # noqa: F401  (torchvision alias before basicsr, registers SRConvNet)
from srconvnet_plugin.compat import DataFaultError, apply_pipeline_shims
from srconvnet_plugin.faults import TrainingStopped
from srconvnet_plugin.options import OptionFileError

apply_pipeline_shims()

from basicsr.train import train_pipeline  # noqa: E402


def main():
    """Run ``basicsr.train.train_pipeline`` with root_path = the current working directory."""
    try:
        train_pipeline(os.getcwd())
    except OptionFileError as e:
        argparse.ArgumentParser(prog='srconvnet-train').exit(2, f'srconvnet-train: error: {e}\n')
    except (TrainingStopped, DataFaultError) as e:  # a fault, named; what was saved before is complete
        parser = argparse.ArgumentParser(prog='srconvnet-train')
        parser.exit(getattr(e, 'exit_code', 1), f'srconvnet-train: error: {e}\n')


if __name__ == '__main__':
    main()
