"""The web page of drcn-serve in a real browser: Debian's Chromium, headless, driven by selenium through Debian's
chromedriver. The test picks an image, presses Upscale, and checks the result image's size and every pixel against
what drcn-run writes for the same file."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_cli

pytest.importorskip("ray.serve")
pytest.importorskip("onnxruntime")
pytest.importorskip("selenium.webdriver")

pytestmark = pytest.mark.slow


def test_the_page_upscales_a_picked_image_to_the_pixels_drcn_run_writes(browser, tmp_path, tiny_model_files):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from drcn.images import read_image, write_image
    from test_serve import Server

    image = np.random.default_rng(3).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    write_image(tmp_path / "pick.png", image)
    result = run_cli("drcn.runtime.run_cli", str(tmp_path / "pick.png"), "-o", str(tmp_path / "want.png"),
                     "--onnx", str(tiny_model_files[1]), "--backend", "onnxruntime", "--scale", "3", "--tile", "32")
    assert result.returncode == 0, result.stderr
    want = read_image(tmp_path / "want.png")

    server = Server(tmp_path, "--onnx", str(tiny_model_files[1]), "--backend", "onnxruntime", "--tile", "32")
    try:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: "onnxruntime" in d.find_element(By.ID, "runs").text)
        assert "precision fp32" in browser.find_element(By.ID, "runs").text
        browser.find_element(By.ID, "file").send_keys(str(tmp_path / "pick.png"))
        Select(browser.find_element(By.ID, "scale")).select_by_visible_text("3")
        wait.until(until.element_to_be_clickable((By.ID, "go"))).click()
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith(("done", "failed")))
        status = browser.find_element(By.ID, "status")
        assert status.text.startswith("done: 123x90"), status.text
        assert browser.find_element(By.ID, "download").get_attribute("download") == "pick_x3.png"
        # every pixel of the shown result, read back through a canvas
        pixels = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const img = document.getElementById("after");
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(img, 0, 0);
            done(Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data));""")
        shown = np.array(pixels, np.uint8).reshape(90, 123, 4)
        np.testing.assert_array_equal(shown[:, :, :3], want)
        assert (shown[:, :, 3] == 255).all()
        browser.save_screenshot(str(tmp_path / "page.png"))
    finally:
        assert server.stop() == 0, server.output()


def test_the_video_tab_submits_a_job_shows_its_progress_and_links_the_result(browser, tmp_path, tiny_model_files):
    """Pick a clip in the page's video tab: it uploads it as a job, shows progress, and links the finished file by a
    signed URL that needs no token; the file is drcn-run's for the same clip (frames, size)."""
    import urllib.request

    av = pytest.importorskip("av")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from test_serve import Server
    from test_video import make_clip

    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=36, size=(48, 64))
    (tmp_path / "token.txt").write_text("page-token\n")
    server = Server(tmp_path, "--onnx", str(tiny_model_files[1]), "--backend", "onnxruntime", "--tile", "32",
                    "--job-dir", str(tmp_path / "jobs"), "--token-file", str(tmp_path / "token.txt"))
    try:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda d: d.find_element(By.ID, "token-row").is_displayed())
        browser.find_element(By.ID, "token").send_keys("page-token")
        browser.find_element(By.ID, "video").send_keys(str(clip))
        browser.find_element(By.ID, "submit-video").click()
        wait.until(lambda d: d.find_element(By.ID, "job-status").text.startswith(("done", "failed")))
        status = browser.find_element(By.ID, "job-status").text
        assert status.startswith("done: 36 frames, 128x96"), status
        assert browser.find_element(By.ID, "job-progress").get_attribute("value") == "36"
        link = browser.find_element(By.ID, "job-download")
        assert link.is_displayed() and link.get_attribute("download") == "clip_x2.mkv"
        href = link.get_attribute("href")
        assert "/result?expires=" in href and "&sig=" in href
        fetched = tmp_path / "fetched.mkv"
        with urllib.request.urlopen(href, timeout=30) as answer:      # no token: the link carries its own
            fetched.write_bytes(answer.read())
        with av.open(str(fetched)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 36 and frames[0].shape == (96, 128, 3)
        browser.save_screenshot(str(tmp_path / "video-tab.png"))
    finally:
        assert server.stop() == 0, server.output()
