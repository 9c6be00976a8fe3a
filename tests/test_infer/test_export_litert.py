"""``--target litert``: a .tflite that ai-edge-litert's interpreter runs within 1e-4 of PyTorch, with its scale,
target and input size in the flatbuffer's metadata; refusals before any export."""
import numpy as np
import pytest

from export_runtimes import INPUT_SIZE, check_fixed_size_refusals, exported_fixture, photo, pytorch_output
from srconvnet.export.common import INPUT_SIZE_KEY, SCALE_KEY, TARGET_KEY

interpreter = pytest.importorskip('ai_edge_litert.interpreter', reason="the litert extra is not installed "
                                  "(pip install 'srconvnet-plugin[litert]')")
pytest.importorskip('litert_torch', reason="the litert extra is not installed (pip install 'srconvnet-plugin[litert]')")

exported = exported_fixture('litert', '.tflite')


def test_litert_interpreter_matches_pytorch(exported):
    from srconvnet.export.litert import read_metadata

    model, path = exported
    runner = interpreter.Interpreter(model_path=str(path)).get_signature_runner()
    (input_name, ) = runner.get_input_details()
    x = photo(*INPUT_SIZE)
    (out, ) = runner(**{input_name: x.numpy()}).values()
    expected = pytorch_output(model, x)
    assert out.shape == expected.shape == (1, 3, model.upscale * INPUT_SIZE[0], model.upscale * INPUT_SIZE[1])
    assert np.abs(out - expected).max() < 1e-4
    with open(path, 'rb') as f:
        props = read_metadata(f.read())
    assert (props[SCALE_KEY], props[TARGET_KEY], props[INPUT_SIZE_KEY]) == (str(model.upscale), 'litert', '18x22')


def test_litert_refusals_come_before_the_export(tmp_path):
    check_fixed_size_refusals(tmp_path, 'litert', '.tflite')
