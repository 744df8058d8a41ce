import pytest

torch = pytest.importorskip("torch")

from drcn import ModelConfig  # noqa: E402
from drcn.model import DRCN, count_parameters  # noqa: E402


def tiny(recursions=3, filters=8):
    torch.manual_seed(0)
    return DRCN(ModelConfig(filters=filters, recursions=recursions))


def test_shapes_dtype_and_intermediates():
    model = tiny()
    x = torch.rand(2, 1, 19, 23)
    y, preds = model(x, return_intermediates=True)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert preds.shape == (3, 2, 1, 19, 23)
    # The output is the learned weighted sum of the intermediate predictions.
    expected = sum(model.ensemble[d] * preds[d] for d in range(3))
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(model(x), y)


def test_paper_configuration_has_1775121_parameters():
    model = DRCN(ModelConfig())
    assert count_parameters(model) == 1_775_121 == ModelConfig().num_parameters


def test_recursive_conv_is_one_module_reused():
    counts = {d: count_parameters(tiny(recursions=d)) for d in (1, 4, 9)}
    # Only the D ensemble weights grow with depth; the recursive convolution is shared.
    assert counts[4] - counts[1] == 3 and counts[9] - counts[1] == 8
    model = tiny(recursions=4)
    calls = []
    model.recursive.register_forward_hook(lambda *a: calls.append(1))
    model.reconstruct.register_forward_hook(lambda *a: calls.append(2))
    model(torch.rand(1, 1, 8, 8))
    assert calls.count(1) == 4 and calls.count(2) == 4


@pytest.mark.parametrize("recursions", [1, 3, 6])
def test_receptive_field_is_2d_plus_9(recursions):
    model = tiny(recursions=recursions)
    # Random weights everywhere (the identity init of the recursion would not change the support, but a
    # generic network is the stronger test); the gradient of one output pixel marks the inputs it sees.
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + 0.1)
    size = 2 * (2 * recursions + 9)
    x = torch.rand(1, 1, size, size, requires_grad=True)
    model(x)[0, 0, size // 2, size // 2].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert rows.max() - rows.min() + 1 == 2 * recursions + 9 == model.config.receptive_field
    assert cols.max() - cols.min() + 1 == 2 * recursions + 9


def test_identity_initialisation_of_recursion():
    model = tiny()
    h = torch.rand(1, 8, 5, 5)
    torch.testing.assert_close(model.recursive(h), h)
