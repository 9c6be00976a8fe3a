"""Y-PSNR/SSIM of a network on a paired test set, as BasicSR's SRModel validation computes them."""
import os

import numpy as np
import torch

from srconvnet_plugin.compare.measure import run_padded
from srconvnet_plugin.compare.presets import CompareError


def find_pairs(gt_dir, lq_dir, filename_tmpl='{}'):
    """(lq_path, gt_path) pairs, matched by BasicSR's ``paired_paths_from_folder`` (LQ name = tmpl.format(GT))."""
    from basicsr.data.data_util import paired_paths_from_folder

    for folder, flag in ((gt_dir, '--gt'), (lq_dir, '--lq')):
        if not os.path.isdir(folder):
            raise CompareError(f'{flag} {folder}: not a directory')
    try:
        paths = paired_paths_from_folder([lq_dir, gt_dir], ['lq', 'gt'], filename_tmpl)
    except AssertionError as err:
        raise CompareError(f'cannot pair {lq_dir} with {gt_dir}: {err}') from err
    if not paths:
        raise CompareError(f'--gt {gt_dir}: no images')
    return [(p['lq_path'], p['gt_path']) for p in sorted(paths, key=lambda p: p['gt_path'])]


def _read_tensor(path, y_only):
    """Image file -> 1×C×H×W float tensor in [0, 1], RGB (or the Y channel, as BasicSR's ``color: y``)."""
    import cv2
    from basicsr.utils import img2tensor
    from basicsr.utils.color_util import bgr2ycbcr

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise CompareError(f'{path}: not a readable image')
    img = img.astype(np.float32) / 255.
    if y_only:
        img = bgr2ycbcr(img, y_only=True)[..., None]
    return img2tensor(img, bgr2rgb=True, float32=True).unsqueeze(0)


def evaluate_quality(network, pairs, device='cpu'):
    """Mean Y-PSNR and Y-SSIM of a built ``Network`` over (lq, gt) ``pairs``, as BasicSR's SRModel validation.

    GT is cropped to the LQ size × scale (``PairedImageDataset``), the output and GT go through ``tensor2img``
    (clamp to [0, 1], round to 8 bits) and ``calculate_psnr``/``calculate_ssim`` use ``crop_border=scale`` and
    ``test_y_channel=True``. Inputs an arch does not accept are padded as its ``SizeRule`` says, outputs cropped back.
    """
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import tensor2img

    scale = network.scale
    psnrs, ssims = [], []
    for lq_path, gt_path in pairs:
        lq = _read_tensor(lq_path, network.channels == 1).to(device)
        gt = _read_tensor(gt_path, network.channels == 1)
        h, w = lq.shape[-2] * scale, lq.shape[-1] * scale
        if gt.shape[-2] < h or gt.shape[-1] < w:
            raise CompareError(f'{gt_path}: {gt.shape[-2]}×{gt.shape[-1]} is smaller than {lq_path} ×{scale} '
                               f'({h}×{w})')
        gt = gt[..., :h, :w]
        with torch.no_grad():
            out = run_padded(network.model, lq, network.rule, scale)
        sr_img, gt_img = tensor2img(out), tensor2img(gt)
        psnrs.append(calculate_psnr(sr_img, gt_img, crop_border=scale, test_y_channel=True))
        ssims.append(calculate_ssim(sr_img, gt_img, crop_border=scale, test_y_channel=True))
    return float(np.mean(psnrs)), float(np.mean(ssims))
