"""Train with BasicSR's own pipeline: ``python -m srconvnet_plugin.train -opt X.yml`` (console script
``srconvnet-train``), with every flag of ``basicsr/train.py`` (``--launcher``, ``--auto_resume``, ``--debug``,
``--force_yml``, ``--local_rank``/``--local-rank``).

``model_type: SRModel`` trains as :class:`~srconvnet_plugin.models.precision_model.PrecisionSRModel`, which adds the
training keys of traiNNer-redux / neosr (``use_amp``, ``amp_bf16``, ``use_channels_last``, ``use_compile``,
``compile_mode``, ``train: grad_clip`` / ``grad_clip_max_norm``, ``datasets: train: accum_iter``); without them it
trains exactly as ``SRModel``.

Outputs (``experiments/``, ``tb_logger/``) go under the current working directory. Multi-GPU / multi-node:
``torchrun --nproc_per_node N -m srconvnet_plugin.train -opt X.yml --launcher pytorch`` (``scripts/dist_train.sh``).
"""
import srconvnet_plugin

srconvnet_plugin.require_toolbox('srconvnet-train', __name__)  # before anything imports basicsr
from srconvnet_plugin.entry import run_pipeline  # noqa: E402
from srconvnet_plugin.patches.compat import apply_pipeline_shims  # noqa: E402

apply_pipeline_shims()

from basicsr.train import train_pipeline  # noqa: E402


def main():
    """Run ``basicsr.train.train_pipeline`` with root_path = the current working directory."""
    run_pipeline(train_pipeline, 'srconvnet-train')


if __name__ == '__main__':
    main()
