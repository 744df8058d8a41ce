import math

import numpy as np
import pytest

from drcn import DrcnError, metrics


def test_psnr_known_values():
    a = np.full((20, 20), 100, np.uint8)
    assert metrics.psnr(a, a) == math.inf
    b = a + 1  # MSE 1 -> 20·log10(255)
    assert metrics.psnr(a, b) == pytest.approx(20 * math.log10(255))
    c = a.copy()
    c[0, :] = 0  # only in the shaved border
    assert metrics.psnr(a, c, border=1) == math.inf


def test_ssim_identity_and_sensitivity():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 40)).astype(np.uint8)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 80, a.shape), 0, 255)
    assert 0 < metrics.ssim(a, noisy) < 0.95


def test_ssim_matches_direct_formula_on_valid_windows():
    from scipy.ndimage import correlate

    rng = np.random.default_rng(2)
    x = rng.random((30, 30)) * 255
    y = np.clip(x + rng.normal(0, 10, x.shape), 0, 255)
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def f(img):
        return correlate(img, w)[5:-5, 5:-5]  # 'valid' positions only

    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    direct = ((2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))).mean()
    assert metrics.ssim(x, y) == pytest.approx(direct, abs=1e-9)


def test_metric_errors():
    with pytest.raises(DrcnError, match="shape"):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(DrcnError, match="11x11"):
        metrics.ssim(np.zeros((12, 12)), np.zeros((12, 12)), border=2)
