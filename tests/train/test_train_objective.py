import pytest

torch = pytest.importorskip("torch")

from drcn.train.objective import alpha_at, drcn_loss  # noqa: E402


def test_alpha_decays_linearly_to_zero():
    assert alpha_at(0, 100) == 1.0
    assert alpha_at(25, 100) == pytest.approx(0.75)
    assert alpha_at(100, 100) == 0.0 and alpha_at(500, 100) == 0.0


def test_loss_mixes_supervision_and_ensemble():
    torch.manual_seed(0)
    target = torch.rand(2, 1, 5, 5)
    preds = torch.rand(3, 2, 1, 5, 5)
    output = preds.mean(0)
    per_d = sum(((p - target) ** 2).mean() for p in preds) / 3
    ens = ((output - target) ** 2).mean()
    for alpha in (0.0, 0.3, 1.0):
        loss, parts = drcn_loss(output, preds, target, alpha)
        assert loss.item() == pytest.approx((alpha * per_d + (1 - alpha) * ens).item(), rel=1e-6)
    assert parts["mse_intermediate"] == pytest.approx(per_d.item(), rel=1e-6)


def test_selection_psnr_weights_scales():
    from drcn.train.loop import selection_psnr

    scores = {"x2": 36.0, "x3": 32.0, "x4": 30.0}
    assert selection_psnr(scores) == pytest.approx(98 / 3)
    assert selection_psnr(scores, (2.0, 1.0, 1.0)) == pytest.approx((72 + 32 + 30) / 4)
    assert selection_psnr(scores, (1.0, 0.0, 0.0)) == 36.0
