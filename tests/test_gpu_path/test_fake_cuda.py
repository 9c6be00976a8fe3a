"""The GPU path on fake CUDA tensors (``fake_cuda.py``): every forward a GPU training, validation, ``srconvnet-infer
--device cuda``, spandrel and the ComfyUI node run, built the way they are built for a GPU (the shipped option files
with ``num_gpu: 1``, ``torch.device('cuda')``), with device placement and dtype flow checked on every run, without a
GPU. A CPU tensor planted in the network's forward or in the real-world degradations makes the checks fail (tested).

Where fake tensors stop (the backward pass, a decision on data, ``.numpy()``), each test says so in its docstring and
runs the parts beyond it one by one on the model's own objects, or checks that the tensors they hold are on the model's
device. What only a real GPU can tell (speed, memory, cuDNN, NCCL, the backward pass) is ``scripts/gpu_check.sh``'s.
"""
import copy
import random
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import REPO_ROOT, TEXTURED_PHOTOS, make_paired_set
from fake_cuda import CUDA, assert_on, fake_cuda, same_device
from srconvnet import engine
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.checkpoints import save_state_dict
from srconvnet_plugin.models.precision_model import PrecisionSRModel, to_channels_last
from srconvnet_plugin.utils.compat import apply_pipeline_shims

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test_realworld'))
from realworld_helpers import dataset_batch, model_options, parse_in_process, prepare_workdir  # noqa: E402

apply_pipeline_shims()
import basicsr.models.realesrnet_model as realesrnet_model  # noqa: E402  (filter2D as the shims leave it)
import basicsr.train  # noqa: E402
from basicsr.data.degradations import add_gaussian_noise_pt  # noqa: E402
from basicsr.data.transforms import paired_random_crop  # noqa: E402
from basicsr.utils import DiffJPEG  # noqa: E402
from srconvnet_plugin.models.realworld_model import RealSRConvNetGANModel, RealSRConvNetModel  # noqa: E402

# on a GPU machine the real path runs (pytest -m cuda, scripts/gpu_check.sh); fake CUDA is for machines without one
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is here: the cuda-marked tests run the real '
                                'GPU path')
TINY = dict(num_feat=16, num_block=1, num_heads=4, num_kernels=4)
#: ``--force_yml`` entries that shrink the shipped network (the device code is the same at every size)
TINY_FORCE = [f'network_g:{k}={v}' for k, v in TINY.items()]
#: top-level training keys of each precision (set on the parsed dict: parse_options refuses fp16 without CUDA)
PRECISIONS = {'fp32': {}, 'fp16': {'use_amp': True}, 'bf16': {'use_amp': True, 'amp_bf16': True},
              'channels_last': {'use_channels_last': True}}
AMP_DTYPE = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def tiny_net(upscale=4):
    return SRConvNet(upscale=upscale, **TINY)


def fourier_dtypes(model):
    """Record the output dtype of every Fourier unit of ``model`` (a forward hook); returns the list it fills."""
    seen = []
    for module in model.modules():
        if type(module).__name__ == 'FourierUnit':
            module.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    return seen


def network_forward(model, x, precision='fp32'):
    """``model(x)`` the way training runs it on a GPU under ``precision`` (autocast, channels-last batch); checks the
    output's device, dtype and shape, and that the Fourier units computed in float32; returns the output."""
    if precision == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    fourier = fourier_dtypes(model)
    with torch.autocast('cuda', dtype=AMP_DTYPE.get(precision, torch.float16), enabled=precision in AMP_DTYPE):
        out = model(x)
    assert same_device(out.device, x.device) and out.dtype == AMP_DTYPE.get(precision, torch.float32)
    assert out.shape == (x.shape[0], 3, x.shape[2] * model.upscale, x.shape[3] * model.upscale)
    assert fourier and set(fourier) == {torch.float32}, fourier
    return out


# --------------------------------------------------------------------------------------------------------------------
# the network and the engine
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('precision', list(PRECISIONS))
def test_network_forward_on_fake_cuda(precision):
    """SRConvNet moved with ``.to('cuda')`` runs its training forward on a CUDA batch: fp32, fp16 and bf16 autocast
    (the Fourier unit in float32), and with channels-last weights and batch. The backward pass needs a real GPU."""
    with fake_cuda():
        model = tiny_net().to('cuda')
        if precision == 'channels_last':
            to_channels_last(model)
        assert_on(CUDA, network=model)
        network_forward(model, torch.rand(2, 3, 12, 12, device='cuda'), precision)


def test_the_engine_steps_aside_on_cuda_and_the_module_forwards_run():
    """Inference (no autograd, eval) of the stock SRConvNet on a CUDA batch: ``engine.accepts`` says no (the engine is
    CPU-only) without an ``EngineStepsAside`` warning (the network is stock), and the module forwards run on CUDA."""
    with fake_cuda():
        model = tiny_net().to('cuda').eval()
        x = torch.rand(1, 3, 12, 12, device='cuda')
        assert engine.first_difference(model) is None  # the stock network: on a CPU batch the engine would run it
        ran = []
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('error', engine.EngineStepsAside)
            assert not engine.accepts(model, x)
            model.blocks[0].ffn.register_forward_hook(lambda mod, args, out: ran.append(out.device))
            out = model(x)
        assert same_device(out.device, CUDA) and ran and same_device(ran[0], CUDA)


def test_a_cpu_tensor_planted_in_the_network_forward_fails_the_check():
    """A block whose forward adds ``torch.ones(n)`` (made without ``device=``, so on the CPU) fails the check of
    :func:`network_forward` on CUDA, in training and in inference; the same network passes on a CPU batch."""
    with fake_cuda():
        model = tiny_net()
        ffn = model.blocks[0].ffn
        stock_forward = ffn.forward
        ffn.forward = lambda x: stock_forward(x) + torch.ones(x.shape[1], 1, 1)
        network_forward(model, torch.rand(1, 3, 12, 12))
        model.to('cuda')
        with pytest.raises(RuntimeError, match='same device'):
            network_forward(model, torch.rand(1, 3, 12, 12, device='cuda'))
        with torch.no_grad(), pytest.raises(RuntimeError, match='same device'):
            model.eval()(torch.rand(1, 3, 12, 12, device='cuda'))


# --------------------------------------------------------------------------------------------------------------------
# the paper's training (SRModel, built as PrecisionSRModel) and validation
# --------------------------------------------------------------------------------------------------------------------
def on_one_gpu(opt, precision):
    """``opt`` as ``parse_options`` hands it to the model on a one-GPU machine: ``num_gpu: 1`` (on this machine the
    patched ``parse_options`` refuses ``num_gpu: 1`` and fp16, naming the option: they are set on the parsed dict)."""
    return dict(copy.deepcopy(opt), num_gpu=1, **PRECISIONS[precision])


@pytest.fixture(scope='module')
def paper_workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp('paper_fake_cuda')
    return root, make_paired_set(root / 'set', TEXTURED_PHOTOS[:2], scale=4, gt_size=48)


def paper_options(paper_workdir, monkeypatch):
    root, sets = paper_workdir
    force = ['num_gpu=0', *TINY_FORCE, f'datasets:train:dataroot_gt={sets.gt_lmdb}',
             f'datasets:train:dataroot_lq={sets.lq_lmdb}', 'datasets:train:gt_size=48',
             f'datasets:val:dataroot_gt={sets.gt}', f'datasets:val:dataroot_lq={sets.lq}']
    return parse_in_process(root, monkeypatch, REPO_ROOT / 'options' / 'train' / 'SRConvNet' / 'train_SRConvNet_x4.yml',
                            force)


def generator_step(model, current_iter=1):
    """``model.optimize_parameters(current_iter)`` as far as fake tensors go: the generator forward and the losses
    run under the model's autocast; the backward pass then stops (autograd asks for a CUDA context). Returns the
    generator's output."""
    model.output = None
    with pytest.raises(RuntimeError, match='hasPrimaryContext'):
        model.optimize_parameters(current_iter)
    assert model.output is not None and same_device(model.output.device, model.device)
    return model.output


def check_optimizers(model):
    """The part of the step after the backward pass: every parameter the optimizers update is on the model's
    device (and the GradScaler is on for fp16 only)."""
    for i, optimizer in enumerate(model.optimizers):
        params = [p for group in optimizer.param_groups for p in group['params']]
        assert params and all(same_device(p.device, model.device) for p in params), f'optimizer {i}'
    fp16 = model.settings.amp_dtype is torch.float16
    assert (model.grad_scaler is not None and model.grad_scaler.is_enabled()) == fp16


def validation_forward(model, lq, gt):
    """``nondist_validation``'s forward: ``feed_data`` of a validation pair and ``test()`` (under the training
    autocast, the output back in float32), on the model's device. The metrics and images after it read the data
    (``tensor2img`` calls ``.numpy()``): a real GPU's part."""
    model.feed_data({'lq': lq, 'gt': gt})
    model.test()
    assert same_device(model.output.device, model.device) and model.output.dtype == torch.float32
    assert model.output.shape == gt.shape
    return model.output


@pytest.mark.parametrize('precision', list(PRECISIONS))
def test_paper_training_step_and_validation_on_fake_cuda(paper_workdir, monkeypatch, precision):
    """The paper's option file (options/train/SRConvNet/train_SRConvNet_x4.yml, the network shrunk) with
    ``num_gpu: 1`` and each precision, built by the entry point's ``build_model`` (``SRModel`` -> PrecisionSRModel):
    the network, losses and optimizer on CUDA; ``feed_data`` of a CPU batch; the generator forward and the L1 loss
    under autocast, up to the backward pass (a real GPU's part); validation's forward."""
    opt = on_one_gpu(paper_options(paper_workdir, monkeypatch), precision)
    with fake_cuda():
        model = basicsr.train.build_model(opt)
        assert type(model) is PrecisionSRModel and model.device.type == 'cuda'
        assert_on(model.device, net_g=model.net_g, cri_pix=model.cri_pix)
        check_optimizers(model)
        model.feed_data({'lq': torch.rand(2, 3, 12, 12), 'gt': torch.rand(2, 3, 48, 48)})
        assert_on(model.device, lq=model.lq, gt=model.gt)
        if precision == 'channels_last':
            assert model.lq.is_contiguous(memory_format=torch.channels_last)
            assert model.net_g.to_feat.weight.is_contiguous(memory_format=torch.channels_last)
        output = generator_step(model)
        assert output.dtype == AMP_DTYPE.get(precision, torch.float32)
        validation_forward(model, torch.rand(1, 3, 10, 14), torch.rand(1, 3, 40, 56))


# --------------------------------------------------------------------------------------------------------------------
# real-world training: both stages with the degradations, the pair pool and the discriminator
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def realworld_workdir(tmp_path_factory, hr_photos):
    """The real-world training folder, and torchvision's VGG19 file (the perceptual loss's) in a torch hub folder:
    the layout of the weights with no data written (``torch.serialization.skip_data``, a sparse file), which is all
    fake tensors read."""
    import torchvision
    work = prepare_workdir(tmp_path_factory.mktemp('realworld_fake_cuda'), hr_photos)
    url = torchvision.models.VGG19_Weights.IMAGENET1K_V1.url
    target = work / 'torch_home' / 'hub' / 'checkpoints' / url.rsplit('/', 1)[1]
    target.parent.mkdir(parents=True)
    with torch.device('meta'):
        layout = torchvision.models.vgg19(weights=None).state_dict()
    with torch.serialization.skip_data():
        torch.save({k: torch.empty(v.shape, dtype=v.dtype) for k, v in layout.items()}, target)
    return work


def realworld_model(workdir, monkeypatch, stage, precision='fp32'):
    """The shipped x4 file of ``stage`` (test data and lengths, the network shrunk) with ``num_gpu: 1``, built by the
    entry point's ``build_model`` under :func:`fake_cuda` (the caller's context); the dataset's first batch (read
    from disk on the CPU, before the fake tensors)."""
    monkeypatch.setenv('TORCH_HOME', str(workdir / 'torch_home'))
    opt = on_one_gpu(model_options(workdir, monkeypatch, stage, force=['num_gpu=0', *TINY_FORCE]), precision)
    return opt, dataset_batch(opt, seed=stage)


def degradations_step_by_step(model, data):
    """The training branch of the real-world ``feed_data`` (BasicSR's ``RealESRNetModel`` / ``RealESRGANModel``),
    part by part on the model's own objects, with the batch as the data loader gives it (CPU):

    the GT and kernels moved to the model's device; USM sharpening (``model.usm_sharpener``); the blurs with the
    batch's kernels (``filter2D``: first, second and final sinc); the resizes in each of the three modes; Gaussian
    noise with per-image sigmas, colour and grey; JPEG (``model.jpeger``); rounding; the paired crop; the training pair
    pool (``model._dequeue_and_enqueue``, filled, then dequeuing). What ``feed_data`` decides on data does not run:
    the grey-noise choice (``if torch.sum(gray_noise) > 0``), Poisson noise (``torch.unique`` per image) and
    DiffJPEG's per-image quality factors (``if quality < 50``): JPEG runs with one quality for the batch, and the
    quantisation tables it would scale per image are checked to be on the device."""
    opt, device = model.opt, model.device
    gt = data['gt'].to(device)
    kernel1, kernel2, sinc_kernel = (data[k].to(device) for k in ('kernel1', 'kernel2', 'sinc_kernel'))
    assert_on(device, usm_sharpener=model.usm_sharpener, jpeger=model.jpeger)
    gt_usm = model.usm_sharpener(gt)
    b, _, ori_h, ori_w = gt.shape
    out = realesrnet_model.filter2D(gt_usm if opt.get('gt_usm', True) else gt, kernel1)
    for mode in ('area', 'bilinear', 'bicubic'):
        F.interpolate(out, scale_factor=0.75, mode=mode)
    out = F.interpolate(out, scale_factor=0.75, mode='bicubic')
    for gray in (0, 1):
        sigma = out.new_zeros(b).uniform_(*opt['noise_range'])
        out = add_gaussian_noise_pt(out, sigma=sigma, gray_noise=gray, clip=True, rounds=False)
    out = model.jpeger(torch.clamp(out, 0, 1), quality=float(np.mean(opt['jpeg_range'])))
    out = realesrnet_model.filter2D(out, kernel2)
    out = F.interpolate(out, size=(ori_h // opt['scale'] * 3 // 4, ori_w // opt['scale'] * 3 // 4), mode='bilinear')
    out = F.interpolate(out, size=(ori_h // opt['scale'], ori_w // opt['scale']), mode='area')
    out = realesrnet_model.filter2D(out, sinc_kernel)
    out = model.jpeger(torch.clamp(out, 0, 1), quality=float(np.mean(opt['jpeg_range2'])))
    lq = torch.clamp((out * 255.0).round(), 0, 255) / 255.
    (gt, gt_usm), lq = paired_random_crop([gt, gt_usm], lq, opt['gt_size'], opt['scale'])
    model.gt, model.gt_usm, model.lq = gt, gt_usm, lq
    for _ in range(model.queue_size // b + 1):  # fill the pool, then swap a batch with it
        model._dequeue_and_enqueue()
    assert_on(device, lq=model.lq, gt=model.gt, queue_lr=model.queue_lr, queue_gt=model.queue_gt)
    assert model.queue_ptr == model.queue_size and model.lq.shape == (b, 3, opt['gt_size'] // opt['scale'],
                                                                      opt['gt_size'] // opt['scale'])
    model.lq = model.lq.contiguous()


def feed_data_stops_at_a_data_decision(model, data):
    """The real ``feed_data`` runs on CUDA (GT, kernels, USM, first blur and resize) until BasicSR's noise decides on
    data; it raises ``DataDependentOutputException`` there, not a device error."""
    from torch._subclasses.fake_tensor import DataDependentOutputException
    random.seed(0)
    np.random.seed(0)
    with pytest.raises(DataDependentOutputException) as stop:
        model.feed_data(data)
    assert any(entry.path.name == 'degradations.py' for entry in stop.traceback), stop.traceback
    assert_on(model.device, gt=model.gt, kernel1=model.kernel1, kernel2=model.kernel2, sinc_kernel=model.sinc_kernel)


def discriminator_step(model):
    """Stage 2's discriminator half of ``optimize_parameters``, which the generator's backward pass keeps from
    running on fake tensors: ``net_d`` and the GAN loss on the real (``gan_gt``) and fake images under autocast."""
    gan_gt = model.gt_usm if model.opt['gan_gt_usm'] else model.gt
    fake = model.output.detach().clone()
    for images, target in ((gan_gt, True), (fake, False)):
        with model.autocast():
            pred = model.net_d(images)
            loss = model.cri_gan(pred, target, is_disc=True)
        assert same_device(pred.device, model.device) and same_device(loss.device, model.device)
        assert torch.mean(pred.detach().float()).dtype == torch.float32


@pytest.mark.parametrize('stage,precision', [(1, 'fp32'), (2, 'fp16')])
def test_realworld_training_step_and_validation_on_fake_cuda(realworld_workdir, monkeypatch, stage, precision):
    """Real-ESRGAN's stages (options/train/RealSRConvNet/train_RealSRConvNet_x4_stage{1,2}.yml, the network shrunk)
    with ``num_gpu: 1``, built by the entry point's ``build_model``: net_g (and stage 2's U-Net discriminator, losses
    with the perceptual loss's VGG19) on CUDA, and DiffJPEG and USMSharp. ``feed_data`` runs on CUDA until its noise
    decides on data (fake tensors hold none); the degradations then run part by part
    (:func:`degradations_step_by_step`), the generator forward with its losses under autocast up to the backward pass
    (a real GPU's part), stage 2's discriminator forward with its GAN losses, and validation's forward."""
    workdir = realworld_workdir
    opt, data = realworld_model(workdir, monkeypatch, stage, precision)
    with fake_cuda():
        model = basicsr.train.build_model(opt)
        assert type(model) is (RealSRConvNetModel if stage == 1 else RealSRConvNetGANModel)
        nets = dict(net_g=model.net_g, cri_pix=model.cri_pix, jpeger=model.jpeger, usm=model.usm_sharpener)
        if stage == 2:
            nets.update(net_g_ema=model.net_g_ema, net_d=model.net_d, cri_perceptual=model.cri_perceptual,
                        cri_gan=model.cri_gan)
        assert_on(model.device, **nets)
        check_optimizers(model)
        feed_data_stops_at_a_data_decision(model, data)
        degradations_step_by_step(model, data)
        output = generator_step(model)
        assert output.dtype == AMP_DTYPE.get(precision, torch.float32)
        if stage == 2:
            discriminator_step(model)
        model.is_train = False  # as the real-world models' nondist_validation sets it around SRModel's
        validation_forward(model, torch.rand(1, 3, 12, 12), torch.rand(1, 3, 48, 48))
        assert same_device(model.gt_usm.device, model.device)  # the real-world models sharpen validation GT too


def test_diffjpeg_left_on_the_cpu_fails_the_check(realworld_workdir, monkeypatch):
    """A real-world model whose DiffJPEG is built without ``.to(self.device)`` (as a planted bug) fails the
    degradation check: its quantisation tables are on the CPU (and its forward would mix devices)."""
    opt, data = realworld_model(realworld_workdir, monkeypatch, 1)
    with fake_cuda():
        model = basicsr.train.build_model(opt)
        model.jpeger = DiffJPEG(differentiable=False)
        with pytest.raises(AssertionError, match=r'not on cuda: jpeger\.\S+ \(cpu\)'):
            degradations_step_by_step(model, data)
        with pytest.raises(RuntimeError, match='same device'):
            model.jpeger(torch.rand(2, 3, 16, 16, device='cuda'), quality=50.)


class PoolOnTheCpu(RealSRConvNetModel):
    """A planted bug: the pair pool allocated with ``torch.zeros`` without ``device=`` (BasicSR's code without its
    ``.cuda()``)."""

    @torch.no_grad()
    def _dequeue_and_enqueue(self):
        if not hasattr(self, 'queue_lr'):
            self.queue_lr = torch.zeros(self.queue_size, *self.lq.shape[1:])
            self.queue_gt = torch.zeros(self.queue_size, *self.gt.shape[1:])
            self.queue_ptr = 0
        super()._dequeue_and_enqueue()


def test_a_pair_pool_made_on_the_cpu_fails_the_check(realworld_workdir, monkeypatch):
    """The degradation check fails for a stage-1 model whose pair pool is made without ``device=``."""
    opt, data = realworld_model(realworld_workdir, monkeypatch, 1)
    with fake_cuda():
        model = PoolOnTheCpu(opt)
        # (copies between devices are allowed: the batch goes through the CPU pool and comes back on the CPU)
        with pytest.raises(AssertionError, match=r'not on cuda: lq \(cpu\), gt \(cpu\), queue_lr \(cpu\)'):
            degradations_step_by_step(model, data)


# --------------------------------------------------------------------------------------------------------------------
# inference: srconvnet-infer --device cuda, spandrel (half, bfloat16), the ComfyUI node
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """A tiny x2 SRConvNet checkpoint (BasicSR's ``{'params': ...}``) and an RGBA PNG to upscale."""
    folder = tmp_path_factory.mktemp('infer_fake_cuda')
    torch.manual_seed(0)
    path = folder / 'tiny_x2.pth'
    save_state_dict(tiny_net(upscale=2).state_dict(), path)
    rgba = np.random.default_rng(0).integers(0, 256, (12, 8, 4), dtype=np.uint8)
    cv2.imwrite(str(folder / 'in.png'), rgba)
    return path, folder / 'in.png'


@pytest.mark.parametrize('precision,tile', [('fp16', 0), ('bf16', 8)])
def test_infer_device_cuda_up_to_the_model_call(weights, tmp_path, precision, tile):
    """``srconvnet-infer --device cuda``: here it stops with one line (torch sees no CUDA device); on a GPU machine
    ``resolve_device`` gives ``torch.device('cuda')``, and from there: the precision check, ``load_model`` (the
    checkpoint read and the model moved to CUDA), the image read and moved, the network under autocast (whole or in
    tiles) and the result back on the CPU. ``.numpy()`` of that result needs data: the run stops there."""
    from srconvnet import infer
    path, image = weights
    with pytest.raises(SystemExit) as exit_info:
        infer.main(['-i', str(image), '-o', str(tmp_path / 'out'), '--weights', str(path), '--device', 'cuda'])
    assert exit_info.value.code == 2 and not (tmp_path / 'out').exists()
    device = torch.device('cuda')
    autocast_dtype = infer.check_precision(precision, device)
    img, max_value = infer.read_image(image)
    with fake_cuda():
        model, config = infer.load_model(path, device=device)
        assert_on(device, model=model)
        outputs = []
        model.register_forward_hook(lambda mod, args, out: outputs.append((args[0].device, out.device, out.dtype)))
        with pytest.raises(RuntimeError, match=r'\.numpy\(\) is not supported for tensor subclasses'):
            infer.upscale_image(model, img, max_value, config['upscale'], device, tile=tile,
                                autocast_dtype=autocast_dtype)
        assert outputs and all(same_device(i, device) and same_device(o, device) for i, o, _ in outputs)
        assert {dtype for _, _, dtype in outputs} == {AMP_DTYPE.get(precision, torch.float32)}
        # beyond .numpy(): the alpha channel, by the network (upscale_tensor again), as upscale_image would run it
        alpha = infer.upscale_alpha(model, torch.rand(1, 1, 12, 8).to(device), 2, 'model', tile=tile,
                                    autocast_dtype=autocast_dtype)
        assert alpha.device.type == 'cpu' and alpha.dtype == torch.float32 and alpha.shape == (1, 1, 24, 16)


@pytest.fixture(scope='module')
def spandrel_model_file(weights):
    pytest.importorskip('spandrel')
    return weights[0]


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_spandrel_half_and_bfloat16_on_fake_cuda(spandrel_model_file, dtype):
    """spandrel's loader (with ``srconvnet.spandrel_support.install()``) reads the checkpoint; the descriptor moved
    to CUDA and to half or bfloat16 (``supports_half`` / ``supports_bfloat16``) runs an image of that dtype on CUDA
    and returns it in that dtype."""
    import spandrel

    from srconvnet.spandrel_support import install
    install()
    with fake_cuda():
        descriptor = spandrel.ModelLoader().load_from_file(spandrel_model_file)
        assert descriptor.supports_half and descriptor.supports_bfloat16
        descriptor.to(CUDA)
        descriptor.half() if dtype is torch.float16 else descriptor.bfloat16()
        descriptor.eval()
        assert_on(CUDA, model=descriptor.model)
        assert {p.dtype for p in descriptor.model.parameters()} == {dtype}
        with torch.no_grad():
            out = descriptor(torch.rand(1, 3, 12, 10, device='cuda', dtype=dtype))
        assert same_device(out.device, CUDA) and out.dtype == dtype and out.shape == (1, 3, 24, 20)


@pytest.mark.parametrize('batch,channels,tile', [(2, 3, 0), (1, 4, 8)])
def test_comfyui_node_model_call_on_fake_cuda(spandrel_model_file, batch, channels, tile):
    """The ComfyUI node (``comfyui_srconvnet/nodes.py``, without ComfyUI) with the UPSCALE_MODEL on CUDA: the node's
    ``upscale`` and its model call ``upscale_images`` run ComfyUI's CPU IMAGE (a batch of RGB whole, RGBA in tiles) on
    the model's device and return a CPU IMAGE of the upscaled size."""
    import spandrel

    from comfyui_srconvnet.nodes import SRConvNetUpscale, upscale_images
    from srconvnet.spandrel_support import install
    install()
    with fake_cuda():
        descriptor = spandrel.ModelLoader().load_from_file(spandrel_model_file)
        descriptor.to(CUDA)
        image = torch.rand(batch, 12, 8, channels)
        ran = []
        descriptor.model.register_forward_hook(lambda mod, args, out: ran.append(out.device))
        if tile:
            (out, ) = SRConvNetUpscale().upscale(descriptor, image, tile_size=tile, tile_overlap=4)
        else:
            out = upscale_images(descriptor.model, image, descriptor.scale)
        assert ran and all(same_device(d, CUDA) for d in ran)
        assert out.device.type == 'cpu' and out.dtype == torch.float32 and out.shape == (batch, 24, 16, channels)
