"""Option files for the pipeline tests, written the way a user writes them (YAML text with ``!!float``)."""

TINY_NET = """network_g:
  type: SRConvNet
  num_in_ch: 3
  num_out_ch: 3
  num_feat: 16
  num_block: 1
  num_heads: 4
  num_kernels: 4
  upscale: 4
  img_range: 255.
"""

METRICS = """  metrics:
    psnr:
      type: calculate_psnr
      crop_border: 4
      test_y_channel: true
    ssim:
      type: calculate_ssim
      crop_border: 4
      test_y_channel: true
"""


def make_train_yaml(sets, name, total_iter=10, save_freq=10, val_freq=10, milestones=(5, 15), tb_logger=True):
    """A small SRConvNet x4 training: train on the LMDB set (48x48 GT crops, batch 2), validate on the folder set."""
    train, val = sets['train'], sets['val']
    return f"""# tiny SRConvNet x4 training for the tests
name: {name}
model_type: SRModel
scale: 4
num_gpu: 0
manual_seed: 0

datasets:
  train:
    name: tiny_lmdb
    type: PairedImageDataset
    dataroot_gt: {train.gt_lmdb}
    dataroot_lq: {train.lq_lmdb}
    io_backend:
      type: lmdb
    gt_size: 48
    use_hflip: true
    use_rot: true
    num_worker_per_gpu: 0
    batch_size_per_gpu: 2
    dataset_enlarge_ratio: 1
    prefetch_mode: ~
  val:
    name: tiny_val
    type: PairedImageDataset
    dataroot_gt: {val.gt}
    dataroot_lq: {val.lq}
    io_backend:
      type: disk

{TINY_NET}
path:
  pretrain_network_g: ~
  strict_load_g: true
  resume_state: ~

train:
  ema_decay: 0
  optim_g:
    type: Adam
    lr: !!float 2e-4
    weight_decay: 0
    betas: [0.9, 0.99]
  scheduler:
    type: MultiStepLR
    milestones: [{milestones[0]}, {milestones[1]}]
    gamma: 0.5
  total_iter: {total_iter}
  warmup_iter: -1
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean

val:
  val_freq: {val_freq}
  save_img: true
{METRICS}
logger:
  print_freq: 1
  save_checkpoint_freq: {save_freq}
  use_tb_logger: {str(tb_logger).lower()}
"""


def make_test_yaml(sets, name, net_g):
    """Test the network ``net_g`` (a BasicSR ``{'params': ...}`` file) on the folder validation set."""
    val = sets['val']
    return f"""name: {name}
model_type: SRModel
scale: 4
num_gpu: 0
manual_seed: 0

datasets:
  test_1:
    name: tiny_val
    type: PairedImageDataset
    dataroot_gt: {val.gt}
    dataroot_lq: {val.lq}
    io_backend:
      type: disk

{TINY_NET}
path:
  pretrain_network_g: {net_g}
  strict_load_g: true
  param_key_g: params

val:
  save_img: true
  suffix: ~
{METRICS}"""
