"""What the README and docs/ say about set-up, training, testing and the network's size stays true."""
import re

import pytest
import yaml
from torch import nn

from basicsr.archs import build_network
from helpers import REPO_ROOT
from srconvnet_plugin.utils.options import OptionLoader, load_options

README = (REPO_ROOT / 'README.md').read_text()
TRAINING = (REPO_ROOT / 'docs' / 'training.md').read_text()
ARCHITECTURE = (REPO_ROOT / 'docs' / 'architecture.md').read_text()


def section(text, title):
    start = text.index(f'\n## {title}\n')
    end = text.find('\n## ', start + 1)
    return text[start:end if end != -1 else None]


def test_first_screen_commands_are_the_ci_commands():
    ci = (REPO_ROOT / '.ci' / 'run').read_text()
    blocks = re.findall(r'```bash\n(.*?)```', README[:README.index('\n## ')], re.S)
    commands = [line for block in blocks for line in block.splitlines() if line and not line.startswith('#')]
    assert len(commands) == 2
    assert commands[1] in ci  # CI runs the README's test command, as written


def test_example_option_file_is_read_safely_and_builds_srconvnet(tmp_path):
    [example] = re.findall(r'```yaml\n(.*?)```', section(TRAINING, 'Option files'), re.S)
    path = tmp_path / 'train_SRConvNet_x4.yml'
    path.write_text(example)
    opt = load_options(path)
    assert opt['train']['optim_g']['lr'] == 5e-4 and opt['val']['val_freq'] == 5000.0
    net = build_network(dict(opt['network_g']))
    assert type(net).__name__ == 'SRConvNet' and net.upscale == opt['scale'] == 4
    assert yaml.load(example, Loader=OptionLoader) == opt  # noqa: S506  (safe loader)


def test_entry_points_take_basicsrs_flags(monkeypatch, capsys):
    from srconvnet_plugin import test as test_entry
    from srconvnet_plugin import train as train_entry
    for entry in (train_entry, test_entry):
        monkeypatch.setattr('sys.argv', [entry.__name__, '--help'])
        with pytest.raises(SystemExit) as exit_info:
            entry.main()
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        for flag in ('-opt', '--launcher', '--auto_resume', '--debug', '--local_rank', '--force_yml'):
            assert flag in out, (entry.__name__, flag)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_parameter_counts_in_readme_and_architecture_page_are_the_networks(scale):
    """Both counting conventions, as the docs state them: all parameters, and standard layers only (thop's)."""
    net = build_network({'type': 'SRConvNet', 'upscale': scale})
    total = sum(p.numel() for p in net.parameters())
    standard = sum(p.numel() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in m.parameters())
    banks = sum(p.numel() for name, p in net.named_parameters() if '.aggregation.' in name)  # K kernels, K biases
    assert f'{total:,}' in ARCHITECTURE and f'{standard:,}' in ARCHITECTURE and f'{banks:,}' in ARCHITECTURE
    assert f'{total / 1000:,.1f}K' in README and f'{standard / 1000:.1f}K' in README and f'{banks:,}' in README
