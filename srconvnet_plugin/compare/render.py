"""The comparison as a Markdown table, CSV, JSON and a PNG plot, written atomically to an output folder."""
import csv
import io
import json
import os

from srconvnet.atomic_write import atomic_write

OUTPUT_NAMES = ('compare.md', 'compare.csv', 'compare.json', 'compare.png')
CSV_FIELDS = ('arch', 'type', 'scale', 'input', 'traced_input', 'output', 'params', 'params_deployed', 'macs',
              'macs_extra', 'total_macs', 'other_ops', 'params_thop', 'macs_thop', 'latency_median_ms',
              'latency_iqr_ms', 'latency_min_ms', 'latency_max_ms', 'latency_relative', 'relative_to', 'runs', 'device',
              'memory_forward_mb', 'memory_peak_mb', 'memory_kind', 'psnr_y', 'ssim_y', 'notes')


def _fmt(value, spec):
    return '–' if value is None else format(value, spec)


def markdown_table(rows):
    """The comparison as a Markdown table (numbers rounded for reading; CSV/JSON keep them exact)."""
    quality = any(r['psnr_y'] is not None for r in rows)
    references = sorted({r['relative_to'] for r in rows})
    header = ['Arch', 'Scale', 'LR input', 'Params (K)', 'MACs (G)', 'MACs + FFT/attn/products (G)',
              'Other ops (G)', 'thop Params (K)', 'thop MACs (G)', 'Latency ms (median ± IQR)',
              f'Time vs {references[0]}' if len(references) == 1 else 'Time vs reference', 'Fwd mem (MB)']
    if quality:
        header += ['PSNR-Y (dB)', 'SSIM-Y']
    header.append('Notes')
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for r in rows:
        relative = f"{r['latency_relative']:.2f}×" + ('' if len(references) == 1 else f" {r['relative_to']}")
        cells = [r['arch'], f"×{r['scale']}", r['input'].replace('x', '×'), f"{r['params'] / 1e3:,.1f}",
                 f"{r['macs'] / 1e9:.2f}", f"{r['total_macs'] / 1e9:.2f}", f"{r['other_ops'] / 1e9:.2f}",
                 f"{r['params_thop'] / 1e3:,.1f}", f"{r['macs_thop'] / 1e9:.2f}",
                 f"{r['latency_median_ms']:.1f} ± {r['latency_iqr_ms']:.1f}", relative,
                 _fmt(r['memory_forward_mb'], '.0f')]
        if quality:
            cells += [_fmt(r['psnr_y'], '.2f'), _fmt(r['ssim_y'], '.4f')]
        cells.append(r['notes'] or '')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def csv_text(rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def plot(rows, path):
    """PSNR (if measured for every row) or median latency against total MACs; marker area ∝ params."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    use_psnr = all(r['psnr_y'] is not None for r in rows)
    key, label = ('psnr_y', 'Y-PSNR (dB)') if use_psnr else ('latency_median_ms', f"latency (ms, {rows[0]['device']})")
    fig, ax = plt.subplots(figsize=(7, 5))
    max_params = max(r['params'] for r in rows)
    for scale in sorted({r['scale'] for r in rows}):
        sel = [r for r in rows if r['scale'] == scale]
        ax.scatter([r['total_macs'] / 1e9 for r in sel], [r[key] for r in sel],
                   s=[30 + 600 * r['params'] / max_params for r in sel], alpha=0.6, label=f'×{scale}')
        for r in sel:
            ax.annotate(r['arch'], (r['total_macs'] / 1e9, r[key]), fontsize=8, xytext=(4, 4),
                        textcoords='offset points')
    ax.set_xscale('log')
    if not use_psnr:
        ax.set_yscale('log')
    ax.set_xlabel('MACs incl. FFT/attention/products (G, log scale)')
    ax.set_ylabel(label)
    ax.set_title('SR architectures (marker area ∝ parameters)')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(title='scale')
    fig.tight_layout()
    fig.savefig(path, dpi=120, format='png')
    plt.close(fig)


def output_paths(out_dir):
    return [os.path.join(out_dir, n) for n in OUTPUT_NAMES]


def write_outputs(rows, out_dir, meta):
    """Write compare.md/.csv/.json/.png into ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = output_paths(out_dir)
    atomic_write(paths[0], markdown_table(rows).encode('utf-8'))
    atomic_write(paths[1], csv_text(rows).encode('utf-8'))
    atomic_write(paths[2], (json.dumps({'meta': meta, 'rows': rows}, indent=2) + '\n').encode('utf-8'))
    atomic_write(paths[3], lambda tmp: plot(rows, tmp))
    return paths
