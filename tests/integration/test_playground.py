"""The playground in a real browser (Debian's chromium driven by Playwright) against the real gateway and Triton:
replace and remove a background, see the result at the input's size, download it, see credits and the API's errors.

Screenshots go to .replate/screenshots/ in the repository (ignored by git), for eyes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from gateway.app import create_app
from gateway.settings import Settings
from gateway.tritonserver import TritonServer
from replate.imageio import ImageLimits, decode_image
from tests.integration.conftest import GatewayThread

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium (`make chromium` installs it); Playwright never downloads a browser of its own here."""
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".replate" / "screenshots"
RESULT_SHOWN = "() => !document.getElementById('result').hidden && document.getElementById('result-image').naturalWidth"
"""Predicates are functions: the page's Content-Security-Policy forbids evaluating strings, also Playwright's."""


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield await browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        finally:
            await browser.close()


@pytest.fixture
def live_settings(settings: Settings, triton: TritonServer) -> Settings:
    return settings.model_copy(update={"triton_url": triton.grpc_url})


@pytest.fixture
def photo(tmp_path: Path, studio_png: bytes) -> Path:
    path = tmp_path / "product.png"
    path.write_bytes(studio_png)
    return path


@pytest.fixture
async def demo_gateway(live_settings: Settings, make_key) -> AsyncIterator[tuple[GatewayThread, str]]:
    """The gateway as `replate serve` starts it the first time: the playground pre-filled with its demo key."""
    key = await make_key(100)
    with GatewayThread(live_settings, app=create_app(live_settings, demo_key=key)) as running:
        yield running, key


async def natural_size(page: Page) -> list[int]:
    return await page.eval_on_selector("#result-image", "image => [image.naturalWidth, image.naturalHeight]")


async def drop_file(page: Page, selector: str, path: Path, mime: str) -> None:
    """Drag and drop a file onto the page, as a person would from a file manager."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = await page.evaluate_handle(
        """([data, name, mime]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [data, path.name, mime],
    )
    await page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


async def test_replace_and_remove_a_background_in_the_browser(
    page: Page, demo_gateway: tuple[GatewayThread, str], photo: Path, tmp_path: Path
) -> None:
    gateway, key = demo_gateway
    await page.goto(gateway.url + "/")
    assert await page.input_value("#api-key") == key, "the embedded default's demo key is pre-filled"
    await page.wait_for_function("() => document.getElementById('credits').textContent === 'Credits: 100'")

    await page.set_input_files("#image-input", str(photo))
    await page.click("summary")
    await page.fill("#seed", "7")
    await page.select_option("#num-outputs", "2")
    await page.eval_on_selector("#harmonize", "s => { s.value = 0.5; s.dispatchEvent(new Event('input')); }")
    await page.select_option("#shadow", "cast")
    sent: list[dict] = []
    progress_while_waiting: list[bool] = []

    async def watch_progress(route) -> None:
        progress_while_waiting.append(await page.is_visible("#progress"))
        sent.append(route.request.post_data_json)
        await route.continue_()

    await page.route("**/v1/image/replace-background", watch_progress)
    await page.click("#run")
    await page.wait_for_function(RESULT_SHOWN)
    assert progress_while_waiting == [True], "a progress indicator while the request runs"
    assert {name: sent[0][name] for name in ("seed", "num_outputs", "harmonize", "shadow", "scene_prompt")} == {
        "seed": 7, "num_outputs": 2, "harmonize": 0.5, "shadow": "cast",
        "scene_prompt": "modern kitchen counter with morning light",
    }  # fmt: skip
    assert await natural_size(page) == [320, 240], "the result has the input's size"
    assert await page.text_content("#credits") == "Credits: 90"
    assert "320\u00d7240, seed 7, 10 credits" in await page.text_content("#result-info")
    assert await page.locator("#thumbs img").count() == 2
    await page.eval_on_selector("#compare-slider", "s => { s.value = 30; s.dispatchEvent(new Event('input')); }")
    assert await page.eval_on_selector("#compare", "c => c.style.getPropertyValue('--split')") == "30%"
    async with page.expect_download() as download_info:
        await page.click("text=Download 2")
    downloaded = tmp_path / "downloaded.png"
    await (await download_info.value).save_as(downloaded)
    assert decode_image(downloaded.read_bytes(), ImageLimits()).rgb.shape[:2] == (240, 320)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "playground.png", full_page=True)
    print(f"screenshot: {SCREENSHOTS / 'playground.png'}")

    await page.click("#tab-remove")
    await drop_file(page, "#drop-zone", photo, "image/png")
    assert "product.png" in await page.text_content("#image-name")
    await page.click("#run")
    await page.wait_for_function(RESULT_SHOWN)
    assert (await page.get_attribute("#result-image", "src")).startswith("blob:")
    assert await natural_size(page) == [320, 240]
    assert await page.text_content("#credits") == "Credits: 89"
    await page.screenshot(path=SCREENSHOTS / "playground-remove.png", full_page=True)
    print(f"screenshot: {SCREENSHOTS / 'playground-remove.png'}")


async def test_errors_show_the_apis_message(
    page: Page, live_settings: Settings, make_key, photo: Path, tmp_path: Path
) -> None:
    key = await make_key(10)
    with GatewayThread(live_settings) as gateway:
        await page.goto(gateway.url + "/")
        assert await page.input_value("#api-key") == "", "no demo key outside the embedded default"
        await page.set_input_files("#image-input", str(photo))
        await page.click("#run")
        assert "Enter an API key" in await page.text_content("#error")

        await page.fill("#api-key", "rp_not-a-key")
        await page.click("#run")
        await page.wait_for_selector("#error:has-text('unknown or revoked API key')")
        assert "unauthorized, HTTP 401" in await page.text_content("#error")
        assert await page.text_content("#credits") == "Credits: \u2013"
        await page.screenshot(path=SCREENSHOTS / "playground-error.png", full_page=True)

        await page.fill("#api-key", key)
        not_an_image = tmp_path / "notes.png"
        not_an_image.write_text("a shopping list, not a photo")
        await page.set_input_files("#image-input", str(not_an_image))
        await page.click("#run")
        await page.wait_for_selector("#error:has-text('not a recognised image')")
        assert "(image_format_unsupported, HTTP 415)" in await page.text_content("#error")
        assert await page.text_content("#credits") == "Credits: 10", "an error response carries the credits too"
        assert await page.is_hidden("#result")
