"""What the ``train`` and ``test`` entry points share: run a BasicSR pipeline from the current working directory and
turn the plugin's named errors into an exit code and one message."""
import argparse
import os

from srconvnet.checkpoints import CheckpointError
from srconvnet_plugin.patches.compat import apply_pipeline_shims
from srconvnet_plugin.data.data_faults import DataFaultError
from srconvnet_plugin.utils.faults import TrainingStopped
from srconvnet_plugin.utils.options import OptionFileError


def run_pipeline(pipeline, prog):
    """Run ``pipeline(root_path)`` (``basicsr.train.train_pipeline`` or ``basicsr.test.test_pipeline``) with
    root_path = the current working directory: outputs land where the user is, never in site-packages."""
    apply_pipeline_shims()
    parser = argparse.ArgumentParser(prog=prog)
    try:
        pipeline(os.getcwd())
    except (OptionFileError, CheckpointError) as e:  # a bad option file, or a pretrain_network_g that is refused
        parser.exit(2, f'{prog}: error: {e}\n')
    except (TrainingStopped, DataFaultError) as e:  # a fault, named; what was saved before is complete
        parser.exit(getattr(e, 'exit_code', 1), f'{prog}: error: {e}\n')
