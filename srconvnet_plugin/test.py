"""Test with BasicSR's own pipeline: ``python -m srconvnet_plugin.test -opt X.yml`` (console script
``srconvnet-test``), with every flag of ``basicsr/test.py``.

Results (``results/<name>/``: log, ``visualization/``) go under the current working directory.
"""
import srconvnet_plugin

srconvnet_plugin.require_toolbox('srconvnet-test', __name__)  # before anything imports basicsr
from srconvnet_plugin.entry import run_pipeline  # noqa: E402
from srconvnet_plugin.patches.compat import apply_pipeline_shims  # noqa: E402

apply_pipeline_shims()

from basicsr.test import test_pipeline  # noqa: E402


def main():
    """Run ``basicsr.test.test_pipeline`` with root_path = the current working directory."""
    run_pipeline(test_pipeline, 'srconvnet-test')


if __name__ == '__main__':
    main()
