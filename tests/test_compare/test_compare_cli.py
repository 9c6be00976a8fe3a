"""The comparison CLI end to end: table, CSV, JSON, PNG, padding, errors, and Y-PSNR/SSIM on real images."""
import csv
import json

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import srconvnet.checkpoints
from basicsr.archs import build_network
from srconvnet_plugin.compare import construct, main
from srconvnet_plugin.data.data_preparation import bicubic_lr

pytestmark = pytest.mark.usefixtures('one_thread')  # see tests/conftest.py

TINY = 'type=SRConvNet,num_feat=16,num_block=1,num_heads=4,num_kernels=4'
TINY_SWINIR = 'type=SwinIR,embed_dim=12,depths=[1],num_heads=[2],window_size=8,mlp_ratio=2,upsampler=pixelshuffledirect'
TINY_SAFMN = 'type=spandrel.SAFMN,dim=8,n_blocks=1'


def run_cli(args, capsys):
    main(args)
    return capsys.readouterr()


@pytest.mark.slow  # a fresh process per network for its memory
def test_cli_writes_table_csv_json_png(tmp_path, capsys):
    out_dir = tmp_path / 'cmp'
    args = ['--scale', '4', '--archs', 'ECBSR', '--arch-opt', 'swinir', TINY_SWINIR, '--arch-opt', 'safmn', TINY_SAFMN,
            '--input-size', '12x20', '--runs', '2', '--warmup', '1', '--threads', '1', '--out-dir', str(out_dir)]
    captured = run_cli(args, capsys)
    lines = [line for line in captured.out.splitlines() if line.startswith('| ')]
    assert lines[0].startswith('| Arch | Scale | LR input | Params (K) | MACs (G)')
    assert '| thop Params (K) | thop MACs (G) |' in lines[0]  # the counts as commonly reported, beside ours
    assert '| Time vs ECBSR |' in lines[0]  # no SRConvNet here: times relative to the first network
    assert [line.split(' | ')[0] for line in lines[1:]] == ['| ECBSR', '| swinir', '| safmn']
    assert 'Y channel only' in lines[1]
    assert '11,840 params once re-parameterised' in lines[1]
    assert 'input padded 12×20→16×24 (reflect, multiple of 8, as SwinIRModel.test)' in lines[2]
    assert "input padded 12×20→16×24 (reflect, multiple of 8, spandrel's size requirement)" in lines[3]
    assert 'compare' in captured.err and 'timing ×4' in captured.err  # the tqdm progress bars

    with open(out_dir / 'compare.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    report = json.loads((out_dir / 'compare.json').read_text())
    assert [r['arch'] for r in rows] == [r['arch'] for r in report['rows']] == ['ECBSR', 'swinir', 'safmn']
    # thop has no rule for SwinIR's relative position bias tables (plain parameters): its count is lower
    assert int(rows[1]['params_thop']) < int(rows[1]['params'])
    assert float(rows[0]['latency_relative']) == 1.0 and {r['relative_to'] for r in rows} == {'ECBSR'}
    for row, full in zip(rows, report['rows']):
        model = construct(full['options'])
        assert int(row['params']) == sum(p.numel() for p in model.parameters())
        assert int(row['total_macs']) == int(row['macs']) + int(row['macs_extra']) > 0
        assert 0 < int(row['params_thop']) <= int(row['params']) and int(row['macs_thop']) > 0
        assert row['output'] == '48x80'
        assert len(full['by_operator']) > 0
        latency = [float(row[k]) for k in ('latency_min_ms', 'latency_median_ms', 'latency_max_ms')]
        assert 0 < latency[0] <= latency[1] <= latency[2]
        assert row['memory_kind'] == 'cpu_peak_rss'
        assert float(row['memory_peak_mb']) > 50  # a whole Python process with torch in it
        assert 0 <= float(row['memory_forward_mb']) < float(row['memory_peak_mb'])
    assert [r['traced_input'] for r in rows] == ['12x20', '16x24', '16x24']
    assert report['meta']['command'].startswith('python -m srconvnet_plugin.compare --scale 4')
    assert report['meta']['runs'] == 2
    assert report['meta']['complete'] is True

    png = (out_dir / 'compare.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (600, 840)

    # results are never silently replaced
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert 'pass --overwrite' in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before


def test_unknown_arch_lists_what_is_available(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(['--archs', 'SRConvNet', 'NoSuchNet', '--out-dir', str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown arch 'NoSuchNet'" in err
    for name in ('SRConvNet', 'SwinIR-light', 'EDSR-baseline', 'SRVGGNetCompact', 'ECBSR', 'MSRResNet', 'RCAN'):
        assert name in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('opt, message', [('type=NoSuchNet', "type 'NoSuchNet' is not a registered arch"),
                                          ('num_feat=16', "needs 'type=ARCH'"),
                                          ('type=SRConvNet,num_feat', "'num_feat' is not KEY=VALUE"),
                                          ('type=SRConvNet,upscale=2', 'set upscale=2, but this run is for scale 4'),
                                          ('type=SRConvNet,num_heads=3', 'cannot build x from'),
                                          ('type=ECBSR,num_block=1', "missing 5 required positional arguments")])
def test_bad_arch_opt_is_named(opt, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(['--archs', '--arch-opt', 'x', opt, '--input-size', '8', '--runs', '1', '--no-memory', '--out-dir',
              str(tmp_path)])
    assert message in capsys.readouterr().err


def make_pairs(root, scale=2):
    """Two textured 44×44 crops of scikit-image photographs (GT) and their MATLAB-bicubic ÷scale LQ."""
    (root / 'gt').mkdir()
    (root / 'lq').mkdir()
    for name, img in (('astronaut', data.astronaut()[100:144, 180:224]), ('coffee', data.coffee()[150:194, 200:244])):
        lq = bicubic_lr(img, scale)
        cv2.imwrite(str(root / 'gt' / f'{name}.png'), img[..., ::-1])
        cv2.imwrite(str(root / 'lq' / f'{name}.png'), lq[..., ::-1])
    return root / 'gt', root / 'lq'


def reference_y_metrics(model, gt_dir, lq_dir, scale):
    """Y-PSNR/SSIM computed independently: torch output rounded to 8 bits, scikit-image's YCbCr and metrics."""
    psnrs, ssims = [], []
    for gt_path in sorted(gt_dir.iterdir()):
        gt = cv2.imread(str(gt_path))[..., ::-1]
        lq = cv2.imread(str(lq_dir / gt_path.name))[..., ::-1]
        x = torch.from_numpy(lq.astype(np.float32) / 255.).permute(2, 0, 1)[None]
        with torch.no_grad():
            sr = model(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
        sr = np.round(sr * 255.).astype(np.uint8)
        b = scale
        y_sr, y_gt = (rgb2ycbcr(img)[b:-b, b:-b, 0] for img in (sr, gt))
        psnrs.append(peak_signal_noise_ratio(y_gt, y_sr, data_range=255))
        ssims.append(structural_similarity(y_gt, y_sr, data_range=255, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False))
    return np.mean(psnrs), np.mean(ssims)


@pytest.mark.slow
def test_quality_with_weights_on_real_images(tmp_path, capsys, monkeypatch):
    gt_dir, lq_dir = make_pairs(tmp_path)
    loaded = []  # checkpoint files read: each once

    def load_state_dict(path, *args, **kwargs):
        loaded.append(path)
        return real_load(path, *args, **kwargs)

    real_load = srconvnet.checkpoints.load_state_dict
    monkeypatch.setattr(srconvnet.checkpoints, 'load_state_dict', load_state_dict)
    torch.manual_seed(0)
    tiny = build_network(dict(type='SRConvNet', num_feat=16, num_block=1, num_heads=4, num_kernels=4, upscale=2))
    with torch.no_grad():  # weights unlike a fresh init, so a checkpoint that was not loaded shows
        tiny.tail.weight.mul_(3)
    torch.save({'params': tiny.state_dict()}, tmp_path / 'tiny_x2.pth')
    swinir = build_network(dict(type='SwinIR', embed_dim=12, depths=[1], num_heads=[2], window_size=8, mlp_ratio=2,
                                upsampler='pixelshuffledirect', upscale=2))
    torch.save({'params_ema': swinir.state_dict()}, tmp_path / 'swinir_x2.pth')
    safmn = construct(dict(type='spandrel.SAFMN', dim=8, n_blocks=1, upscaling_factor=2))
    torch.save(safmn.state_dict(), tmp_path / 'safmn_x2.pth')

    out_dir = tmp_path / 'cmp'
    captured = run_cli([
        '--scale', '2', '--archs', '--arch-opt', 'tiny', TINY, '--arch-opt', 'swinir', TINY_SWINIR, '--arch-opt',
        'safmn', TINY_SAFMN, '--gt', str(gt_dir), '--lq', str(lq_dir), '--weights', f'tiny={tmp_path / "tiny_x2.pth"}',
        f'swinir={tmp_path / "swinir_x2.pth"}', f'safmn={tmp_path / "safmn_x2.pth"}', '--input-size', '8', '--runs',
        '1', '--no-memory', '--out-dir', str(out_dir)
    ], capsys)
    assert '| PSNR-Y (dB) | SSIM-Y |' in captured.out
    assert sorted(map(str, loaded)) == sorted(str(tmp_path / f) for f in ('tiny_x2.pth', 'swinir_x2.pth',
                                                                          'safmn_x2.pth'))
    rows = {r['arch']: r for r in json.loads((out_dir / 'compare.json').read_text())['rows']}

    psnr, ssim = reference_y_metrics(tiny.eval(), gt_dir, lq_dir, scale=2)
    assert rows['tiny']['psnr_y'] == pytest.approx(psnr, abs=1e-4)
    assert rows['tiny']['ssim_y'] == pytest.approx(ssim, abs=1e-4)
    assert np.isfinite(psnr) and 0 < ssim < 1

    # SwinIR's 22×22 LQ is padded to 24×24 and its output cropped back to 44×44 before the metrics
    assert np.isfinite(rows['swinir']['psnr_y']) and 0 < rows['swinir']['ssim_y'] < 1
    assert rows['swinir']['psnr_y'] != pytest.approx(rows['tiny']['psnr_y'], abs=1e-3)

    # spandrel's SAFMN with its checkpoint: 22×22 LQ padded to 24×24 (spandrel's multiple of 8), cropped back
    safmn.eval()

    def safmn_padded(x):
        return safmn(torch.nn.functional.pad(x, (0, 2, 0, 2), 'reflect'))[..., :44, :44]

    psnr, ssim = reference_y_metrics(safmn_padded, gt_dir, lq_dir, scale=2)
    assert rows['safmn']['psnr_y'] == pytest.approx(psnr, abs=1e-4)
    assert rows['safmn']['ssim_y'] == pytest.approx(ssim, abs=1e-4)


def test_unusable_weights_name_the_file(tmp_path, capsys):
    gt_dir, lq_dir = make_pairs(tmp_path)
    other = build_network(dict(type='SRConvNet', num_feat=16, num_block=1, num_heads=4, num_kernels=4, upscale=4))
    torch.save({'params': other.state_dict()}, tmp_path / 'x4.pth')
    with pytest.raises(SystemExit):
        main(['--scale', '2', '--archs', '--arch-opt', 'tiny', TINY, '--gt', str(gt_dir), '--lq', str(lq_dir),
              '--weights', f'tiny={tmp_path / "x4.pth"}', '--input-size', '8', '--runs', '1', '--no-memory',
              '--out-dir', str(tmp_path / 'cmp')])
    err = capsys.readouterr().err
    assert f'{tmp_path / "x4.pth"}: does not fit tiny ×2' in err and 'an SRConvNet x4 checkpoint' in err
    assert not (tmp_path / 'cmp').exists()
