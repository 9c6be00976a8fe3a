"""scripts/benchmark_realworld.py runs end to end and reports what it claims (correctness only: no timing asserted)."""
import json

import pytest

from helpers import REPO_ROOT, ok, place_vgg19, python_cmd
from realworld_helpers import run

pytestmark = pytest.mark.slow


def test_dry_run_reports_both_stages_against_the_plain_step_with_the_machine(tmp_path, vgg19_weights):
    vgg = place_vgg19(vgg19_weights, tmp_path)  # (read where BasicSR reads it: the script writes none)
    proc = ok(run(python_cmd(REPO_ROOT / 'scripts' / 'benchmark_realworld.py', '--dry-run', '--out', tmp_path / 'out'),
                  tmp_path))
    result = json.loads((tmp_path / 'out' / 'benchmark_realworld.json').read_text())
    assert (result['batch'], result['gt_size'], result['iters']) == (2, 32, 1)
    assert result['machine']['device'] == 'cpu' and result['machine']['cpu']['model']
    rows = {row['step']: row for row in result['rows']}
    assert list(rows) == ['stage 1', 'stage 2', 'plain L1 step (yardstick)']
    plain = rows['plain L1 step (yardstick)']['seconds']
    for name, total in (('stage 1', 1_000_000), ('stage 2', 400_000)):
        row = rows[name]
        assert row['total_iter'] == total and row['seconds'] > 0
        assert row['ratio'] == pytest.approx(row['seconds'] / plain)
        assert row['hours'] == pytest.approx(total * row['seconds'] / 3600)
    assert (tmp_path / 'out' / 'benchmark_realworld.md').read_text() in proc.stdout
    assert {p.name for p in tmp_path.rglob('*') if p.is_file()} == {vgg.name, 'benchmark_realworld.json',
                                                                     'benchmark_realworld.md'}  # nothing else left
