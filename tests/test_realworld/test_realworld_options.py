"""The shipped real-world option files are Real-ESRGAN's recipe with SRConvNet as the generator (every number pinned
here, from BasicSR v1.4.2's options/train/RealESRGAN/ files), they pass the option checks, and what cannot work is
refused before anything is built, one line per problem naming the key (through basicsr's patched parse_options)."""
import pytest

from realworld_helpers import data_paths, lengths, parse_in_process, prepare_workdir, real_photos_option_file, \
    train_option_file
from srconvnet_plugin.utils.checks import OptionCheckError
from srconvnet_plugin.patches.compat import apply_pipeline_shims
from srconvnet_plugin.utils.options import load_options

apply_pipeline_shims()

NET = dict(type='SRConvNet', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=8, num_heads=8, num_kernels=16,
           img_range=255.)
DEGRADATIONS = dict(
    resize_prob=[0.2, 0.7, 0.1], resize_range=[0.15, 1.5], gaussian_noise_prob=0.5, noise_range=[1, 30],
    poisson_scale_range=[0.05, 3], gray_noise_prob=0.4, jpeg_range=[30, 95], second_blur_prob=0.8,
    resize_prob2=[0.3, 0.4, 0.3], resize_range2=[0.3, 1.2], gaussian_noise_prob2=0.5, noise_range2=[1, 25],
    poisson_scale_range2=[0.05, 2.5], gray_noise_prob2=0.4, jpeg_range2=[30, 95], gt_size=256, queue_size=180)
KERNELS = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
DATASET = dict(
    type='RealESRGANDataset_basicsr', dataroot_gt='datasets/DF2K',
    meta_info='datasets/DF2K/meta_info/meta_info_DF2Kmultiscale+OST_sub.txt', io_backend={'type': 'disk'},
    blur_kernel_size=21, kernel_list=KERNELS, kernel_prob=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob=0.1,
    blur_sigma=[0.2, 3], betag_range=[0.5, 4], betap_range=[1, 2],
    blur_kernel_size2=21, kernel_list2=KERNELS, kernel_prob2=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob2=0.1,
    blur_sigma2=[0.2, 1.5], betag_range2=[0.5, 4], betap_range2=[1, 2], final_sinc_prob=0.8,
    gt_size=256, use_hflip=True, use_rot=False, num_worker_per_gpu=5, batch_size_per_gpu=12)
ADAM = dict(type='Adam', weight_decay=0, betas=[0.9, 0.99])
PERCEPTUAL = dict(type='PerceptualLoss', layer_weights={'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1, 'conv4_4': 1,
                                                        'conv5_4': 1},
                  vgg_type='vgg19', use_input_norm=True, perceptual_weight=1.0, style_weight=0, range_norm=False,
                  criterion='l1')
GAN = dict(type='GANLoss', gan_type='vanilla', real_label_val=1.0, fake_label_val=0.0, loss_weight=0.1)


@pytest.mark.parametrize('scale', [2, 4])
@pytest.mark.parametrize('stage', [1, 2])
def test_the_train_files_are_real_esrgans_recipe(scale, stage):
    opt = load_options(train_option_file(scale, stage))
    assert opt['name'] == f'train_RealSRConvNet_x{scale}_stage{stage}' and opt['scale'] == scale
    assert opt['model_type'] == ('RealSRConvNetModel', 'RealSRConvNetGANModel')[stage - 1]
    assert opt['num_gpu'] == 'auto' and opt['manual_seed'] == 0
    assert dict(opt['network_g']) == dict(NET, upscale=scale)
    assert {k: opt[k] for k in DEGRADATIONS} == DEGRADATIONS
    assert opt['queue_size'] % opt['datasets']['train']['batch_size_per_gpu'] == 0
    assert {k: opt['datasets']['train'][k] for k in DATASET} == DATASET
    assert 'val' not in opt['datasets'] and 'val' not in opt
    train, path = opt['train'], opt['path']
    assert train['ema_decay'] == 0.999
    assert train['pixel_opt'] == dict(type='L1Loss', loss_weight=1.0, reduction='mean')
    assert train['scheduler'] == dict(type='MultiStepLR', milestones=[train['total_iter']], gamma=0.5)
    if stage == 1:
        assert opt['gt_usm'] is True
        assert train['optim_g'] == dict(ADAM, lr=2e-4) and train['total_iter'] == 1_000_000
        assert path['pretrain_network_g'] is None and 'network_d' not in opt
    else:
        assert (opt['l1_gt_usm'], opt['percep_gt_usm'], opt['gan_gt_usm']) == (True, True, False)
        assert train['optim_g'] == train['optim_d'] == dict(ADAM, lr=1e-4) and train['total_iter'] == 400_000
        assert dict(opt['network_d']) == dict(type='UNetDiscriminatorSN_basicsr', num_in_ch=3, num_feat=64,
                                              skip_connection=True)
        assert train['perceptual_opt'] == PERCEPTUAL and train['gan_opt'] == GAN
        assert (train['net_d_iters'], train['net_d_init_iters']) == (1, 0)
        # stage 2 starts from stage 1's EMA weights, where stage 1 saves them
        assert path['pretrain_network_g'] == f'experiments/train_RealSRConvNet_x{scale}_stage1/models/net_g_latest.pth'
        assert path['param_key_g'] == 'params_ema' and path['strict_load_g'] is True


@pytest.mark.parametrize('scale', [2, 4])
def test_the_real_photos_test_files_save_images_of_stage2(scale):
    opt = load_options(real_photos_option_file(scale))
    assert opt['model_type'] == 'SRModel' and opt['scale'] == scale
    assert dict(opt['network_g']) == dict(NET, upscale=scale)
    [dataset] = opt['datasets'].values()
    assert dataset['type'] == 'SingleImageDataset' and 'dataroot_gt' not in dataset
    assert opt['val']['save_img'] is True and 'metrics' not in opt['val']
    stage2 = f'experiments/train_RealSRConvNet_x{scale}_stage2/models/net_g_latest.pth'
    assert opt['path']['pretrain_network_g'] == stage2
    assert opt['path']['param_key_g'] == 'params_ema'


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, hr_photos, vgg19_weights):
    return prepare_workdir(tmp_path_factory.mktemp('realworld_options'), hr_photos, vgg19_weights)


def parse(workdir, monkeypatch, scale, stage, *force, text=None):
    """The shipped file of ``scale`` / ``stage`` (or ``text`` written beside it) with the test's data and lengths."""
    path = train_option_file(scale, stage)
    if text is not None:
        path = workdir / path.name
        path.write_text(text)
    opt = parse_in_process(workdir, monkeypatch, path, [*data_paths(workdir), *lengths(), *force])
    return opt, path


def refused(workdir, monkeypatch, scale, stage, *force, text=None):
    with pytest.raises(OptionCheckError) as info:
        parse(workdir, monkeypatch, scale, stage, *force, text=text)
    return str(info.value)


@pytest.mark.parametrize('scale', [2, 4])
@pytest.mark.parametrize('stage', [1, 2])
def test_the_train_files_pass_the_checks_with_paths_and_lengths_changed(workdir, monkeypatch, scale, stage):
    opt, _ = parse(workdir, monkeypatch, scale, stage, 'path:pretrain_network_g=~')
    assert opt['num_gpu'] == 0 and opt['gt_size'] == 32 and opt['queue_size'] == 4


def test_basicsrs_names_build_the_plugins_models(workdir, monkeypatch):
    import basicsr.train
    opt, _ = parse(workdir, monkeypatch, 4, 1, 'model_type=RealESRNetModel_basicsr',
                   'datasets:train:type=RealESRGANDataset')  # (basicsr's registry falls back to <name>_basicsr)
    model = basicsr.train.build_model(opt)
    assert type(model).__name__ == 'RealSRConvNetModel' and model.device.type == 'cpu'


def without(path, *lines):
    text = path.read_text()
    for line in lines:
        assert f'\n{line}\n' in text, line
        text = text.replace(f'\n{line}\n', '\n')
    return text


@pytest.mark.parametrize('force,expected', [
    (['queue_size=5'], 'queue_size: 5 is not a multiple of datasets: train: batch_size_per_gpu: 2 (the pool of '
                       'training pairs is filled and drawn a batch at a time); use e.g. 4'),
    (['gt_size=512'], 'gt_size: 512 is larger than the 400x400 GT that RealESRGANDataset hands the model'),
    (['gt_size=30'], 'gt_size: 30 is not divisible by scale: 4; use e.g. 28'),
    (['datasets:train:type=SingleImageDataset'], 'datasets: train: type: SingleImageDataset: model_type: '
                                                 'RealSRConvNetModel degrades the GT with the kernels '
                                                 'RealESRGANDataset draws'),
    (['datasets:train:meta_info=nowhere.txt'], 'datasets: train: meta_info: nowhere.txt cannot be read (No such file'),
    (['use_amp=true'], 'use_amp: true without amp_bf16: true is fp16 autocast with a GradScaler, which needs a CUDA'),
])
def test_bad_values_are_refused_naming_the_key(workdir, monkeypatch, force, expected):
    assert expected in refused(workdir, monkeypatch, 4, 1, *force)


def test_missing_keys_are_refused_together(workdir, monkeypatch):
    text = without(train_option_file(4, 1), 'jpeg_range2: [30, 95]', 'gt_usm: true', '    final_sinc_prob: 0.8')
    msg = refused(workdir, monkeypatch, 4, 1, text=text)
    assert '2 problem(s)' in msg
    assert ('\n  jpeg_range2, gt_usm: missing; model_type: RealSRConvNetModel makes the LQ images on the fly with '
            "Real-ESRGAN's degradations and reads these top-level keys") in msg
    assert '\n  datasets: train: final_sinc_prob: missing; RealESRGANDataset draws the blur kernels' in msg


def test_images_the_meta_info_lists_must_be_there(workdir, monkeypatch):
    meta = workdir / 'meta_with_a_missing_image.txt'
    meta.write_text((workdir / 'meta_info.txt').read_text() + 'gone.png\n')
    msg = refused(workdir, monkeypatch, 4, 1, f'datasets:train:meta_info={meta}')
    assert f'datasets: train: meta_info: {meta} lists images that are not in dataroot_gt: {workdir / "hr"}: gone.png' \
        in msg


def test_stage2_needs_a_discriminator_and_stage1s_weights(workdir, monkeypatch):
    msg = refused(workdir, monkeypatch, 4, 2, 'network_d=~', 'path:pretrain_network_g=stage1/net_g_latest.pth')
    assert '\n  network_d: missing; model_type: RealSRConvNetGANModel trains a discriminator' in msg
    assert ('\n  path: pretrain_network_g: stage1/net_g_latest.pth does not exist; stage 2 fine-tunes the weights of '
            'stage 1 (model_type: RealSRConvNetModel): train stage 1 first') in msg
