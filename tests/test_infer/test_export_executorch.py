"""``--target executorch``: a .pte that ExecuTorch's runtime (``executorch.runtime``, XNNPACK backend) runs within
1e-4 of PyTorch, recording its scale and input size; refusals before any export."""
import numpy as np
import pytest

from export_runtimes import INPUT_SIZE, check_fixed_size_refusals, exported_fixture, photo, pytorch_output

runtime = pytest.importorskip('executorch.runtime', reason="the executorch extra is not installed "
                              "(pip install 'srconvnet-plugin[executorch]')")

exported = exported_fixture('executorch', '.pte')


def test_executorch_runtime_matches_pytorch(exported):
    model, path = exported
    program = runtime.Runtime.get().load_program(path)
    x = photo(*INPUT_SIZE)
    out = program.load_method('forward').execute([x])[0].numpy()
    expected = pytorch_output(model, x)
    assert out.shape == expected.shape == (1, 3, model.upscale * INPUT_SIZE[0], model.upscale * INPUT_SIZE[1])
    assert np.abs(out - expected).max() < 1e-4
    # the file says what it is: its scale and the one input size it runs at
    assert program.load_method('srconvnet_scale').execute([]) == [model.upscale]
    assert program.load_method('srconvnet_input_size').execute([]) == list(INPUT_SIZE)


def test_executorch_refusals_come_before_the_export(tmp_path):
    check_fixed_size_refusals(tmp_path, 'executorch', '.pte')
