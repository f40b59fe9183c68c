"""The console in a real browser: Debian's chromium, driven by Selenium through Debian's
chromedriver (nothing is downloaded), against the real binary and the deployed stack (its
API host name resolves to the emulator). Every page's screenshot goes to
target/console-screenshots/<host>/; any message the browser logs as an error fails the test."""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import time
import uuid

import pytest
from conftest import HOST

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

SCREENSHOTS = pathlib.Path(__file__).resolve().parents[2] / "target" / "console-screenshots" / HOST


@pytest.fixture
def browser():
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(driver_path), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


class Console:
    """A person at the console: each step waits for what the page shows, as a person would."""

    def __init__(self, driver, root):
        self.driver, self.root = driver, root
        self.wait = WebDriverWait(driver, 30)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def open(self, hash_path):
        self.driver.get(f"{self.root}/console/{hash_path}")
        self.wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def find(self, css):
        return self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def click(self, css):
        self.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    def click_text(self, text):
        self.wait.until(EC.element_to_be_clickable((By.XPATH, f"//*[self::a or self::button][normalize-space()='{text}']"))).click()

    def type(self, css, text):
        element = self.find(css)
        element.clear()
        element.send_keys(text)

    def text_appears(self, css, text):
        self.wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))

    def banner(self):
        return self.driver.find_element(By.ID, "banner").text

    def shot(self, name):
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def errors(self):
        """What the browser logged as errors since the last call (CSP violations, script
        errors, failed loads)."""
        return [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def errors_besides(self, *expected):
        """The errors logged since the last call but those naming one of `expected`: the
        failures a test provoked on purpose."""
        return [e for e in self.errors() if not any(text in e["message"] for text in expected)]

    def log_in(self, account):
        """Logs in with the keyboard alone: type, Tab, type, Enter."""
        self.driver.delete_all_cookies()
        self.open("#/login")
        self.type("#login-form input[name=username]", account["user_name"] + Keys.TAB)
        self.driver.switch_to.active_element.send_keys(account["password"] + Keys.ENTER)
        self.find("#images, .empty")

    def log_out(self):
        self.click("#logout")
        self.find("#login-form")


def wait_for(check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def test_a_person_manages_images_sharing_tasks_and_account_in_the_console(service, browser, tmp_path):
    alice = service.account("acme", "alice")
    bob = service.account("globex", "bob")
    console = Console(browser, service.root)

    console.open("#/login")
    console.find("#login-form")
    console.shot("login")
    assert "HttpOnly" not in browser.page_source
    console.log_in(alice)
    assert not browser.execute_script("return document.cookie"), "the session cookie is readable by scripts"
    assert browser.execute_script("return JSON.stringify(localStorage)") in ("{}", "")
    if HOST != "stack":  # the shared stack lists other tests' public images
        console.text_appears("main", "No images match")
        console.shot("images-empty")

    # Create and upload, with progress, until active.
    disk = tmp_path / "console-disk.raw"
    disk.write_bytes((b"cloud images console test\n" * 41000)[:1 << 20])
    console.click_text("Create image")
    console.type("#new-image input[name=name]", "console-image")
    console.find("#new-image input[name=file]").send_keys(str(disk))
    console.shot("create-image")
    console.click("#new-image button[type=submit]")
    console.text_appears("h1", "console-image")
    console.find("#properties")
    assert "active" in console.find("main").text
    console.shot("image-details")
    image_id = browser.current_url.rsplit("/", 1)[-1]

    # Edit a property.
    properties = console.find("#edit-image textarea[name=properties]")
    properties.send_keys("os_distro=debian\nos_version=12")
    console.click("#edit-image button[type=submit]")
    console.text_appears("#banner", "Saved")
    console.text_appears("#properties", "os_version")
    assert "12" in console.find("#properties").text
    shown = subprocess.run(["curl", "-s", "-H", f"X-Auth-Token: {token_of(service, alice)}",
                            f"{service.root}/v2/images/{image_id}"], capture_output=True, text=True, check=True)
    assert json.loads(shown.stdout)["os_distro"] == "debian"

    # Share with bob's tenant.
    Select(console.find("#edit-image select[name=visibility]")).select_by_value("shared")
    console.click("#edit-image button[type=submit]")
    console.text_appears("#banner", "Saved")
    console.type("#member-id", bob["tenant_id"])
    console.click("#add-member")
    console.text_appears("#members", "pending")
    console.shot("sharing")

    # Export the image to a container, then import it back, watching both tasks finish.
    console.click_text("Export…")
    console.type("#export-form input[name=container]", "backups")
    console.click("#export-form button[type=submit]")
    console.text_appears("#task", "success")
    assert "null" not in console.find("#task").text
    console.shot("task-export")
    console.open("#/tasks")
    console.type("#import-form input[name=container]", "backups")
    console.type("#import-form input[name=object]", f"{image_id}.vhd")
    console.type("#import-form input[name=name]", "reimported")
    console.click("#import-form button[type=submit]")
    console.text_appears("#task", "success")
    console.click_text("Open the imported image")
    console.text_appears("h1", "reimported")
    console.open("#/tasks")
    console.find("#tasks")
    console.shot("tasks")
    console.open("#/images")
    console.find("#images")
    console.type("#filters input[name=name]", "reimported" + Keys.ENTER)
    console.text_appears("#images", "reimported")
    console.type("#filters input[name=name]", Keys.ENTER)
    console.find("#images")
    console.shot("images")
    assert console.errors() == []

    # Reset the API key: the new key works with curl, the old one no longer does.
    console.open("#/account")
    browser.execute_script("window.confirm = () => true")
    console.click("#reset-key")
    new_key = console.find("#api-key").text.strip()
    console.shot("account-new-key")
    assert new_key and new_key != alice["api_key"]
    assert curl_login(service, alice["user_name"], new_key) == 200
    assert curl_login(service, alice["user_name"], alice["api_key"]) == 401
    console.log_in(alice)
    console.log_out()
    assert not [c for c in browser.get_cookies() if c["name"] == "cloud_images_session"]

    # Bob sees the offer, accepts it, and then finds the image among his own.
    console.log_in(bob)
    console.click_text("Shared with me")
    console.text_appears("#offers", "pending")
    console.shot("shared-with-me")
    console.click_text("console-image")
    console.click("#accept")
    console.text_appears("#banner", "accepted")
    console.click_text("Images")
    console.type("#filters input[name=name]", "console-image" + Keys.ENTER)
    console.text_appears("#images", "console-image")

    # On a phone the pages still fit the screen.
    browser.set_window_size(390, 844)
    for page in ("#/shared", "#/tasks", "#/account", "#/images"):
        console.open(page)
        console.find("main h1")
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), page
    console.shot("images-phone")
    browser.set_window_size(1280, 1000)
    console.log_out()

    # A reader sees what its tenant has and is offered no change.
    console.log_in(service.account("acme", "rita", role="reader"))
    console.open("#/tasks")
    main = console.find("main h1").find_element(By.XPATH, "..")
    assert "Start import" not in main.text and "false" not in main.text.split()
    console.open("#/images")
    console.find("#filters")
    assert not browser.find_elements(By.XPATH, "//button[normalize-space()='Create image']")
    console.log_out()
    assert console.errors() == []


def test_an_administrator_is_told_why_a_protected_image_stays_and_manages_accounts(service, browser):
    admin = service.admin
    console = Console(browser, service.root)
    console.log_in(admin)
    browser.execute_script("window.confirm = () => true")
    console.click_text("Create image")
    console.type("#new-image input[name=name]", "guarded" + service.suffix)
    console.click("#new-image button[type=submit]")
    console.find("#edit-image")
    console.click("#edit-image input[name=protected]")
    console.click("#edit-image button[type=submit]")
    console.text_appears("#banner", "Saved")
    console.click("#delete-image")
    console.wait.until(lambda d: "protected" in console.banner().lower())
    assert "guarded" in console.find("h1").text, "a protected image was deleted"
    # The refusal itself is the one thing the browser may log: the 403 it was shown.
    provoked = console.errors()
    assert provoked and all("status of 403" in e["message"] and "/v2/images/" in e["message"] for e in provoked), provoked

    # Tenants and users: create, disable, delete; each user's new key is shown once.
    tenant, user = "console-tenant" + service.suffix, "console-user" + service.suffix
    console.open("#/admin")
    console.type("#new-project input[name=name]", tenant)
    console.click("#new-project button[type=submit]")
    console.text_appears("#projects", tenant)
    Select(console.find("#new-user select[name=project]")).select_by_visible_text(tenant)
    console.type("#new-user input[name=name]", user)
    console.type("#new-user input[name=password]", "pw-console-user")
    console.click("#new-user button[type=submit]")
    console.text_appears("#users", user)
    assert console.find("#api-key").text.strip()
    console.shot("admin")
    row = f"//table[@id='users']//tr[td[1][normalize-space()='{user}']]"
    browser.find_element(By.XPATH, f"{row}//button[normalize-space()='Disable']").click()
    console.wait.until(EC.text_to_be_present_in_element((By.XPATH, f"{row}/td[3]"), "no"))
    assert curl_password_login(service, user, "pw-console-user") == 401
    console.wait.until(EC.element_to_be_clickable((By.XPATH, f"{row}//button[normalize-space()='Delete']"))).click()
    console.wait.until(lambda d: not d.find_elements(By.XPATH, row))
    project_row = f"//table[@id='projects']//tr[td[1][normalize-space()='{tenant}']]"
    console.wait.until(EC.element_to_be_clickable((By.XPATH, f"{project_row}//button[normalize-space()='Delete']"))).click()
    console.wait.until(lambda d: not d.find_elements(By.XPATH, project_row))
    console.log_out()
    assert console.errors() == []


def test_a_big_upload_resumes_after_a_reload_then_downloads_and_deactivates(service, browser, tmp_path):
    """9 MiB from the browser. The local binary takes it in one PUT; the stack (a 4 MiB
    direct limit) in two parts PUT in parallel straight to presigned S3 URLs, a
    cross-origin upload its bucket's CORS rule and the page's CSP must both allow. There the
    network fails the first part; after a reload the same file resumes, sending only it."""
    admin = service.admin
    console = Console(browser, service.root)
    console.log_in(admin)
    data = os.urandom(9 << 20)
    disk = tmp_path / "big.raw"
    disk.write_bytes(data)
    name = "big" + service.suffix
    console.click_text("Create image")
    console.type("#new-image input[name=name]", name)
    console.click("#new-image button[type=submit]")
    console.find("#upload-file")
    image_id = browser.current_url.rsplit("/", 1)[-1]

    in_parts = HOST == "stack"
    if in_parts:
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*partNumber=1&*", "*partNumber=1"]})
    console.find("#upload-file").send_keys(str(disk))
    console.click_text("Upload")
    if in_parts:
        console.wait.until(lambda d: "failed" in console.banner())
        assert wait_for(lambda: saved_plan(browser, image_id)["done"] == [2]), saved_plan(browser, image_id)
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        browser.refresh()
        console.text_appears("main", "was interrupted")
        console.shot("upload-interrupted")
        console.find("#upload-file").send_keys(str(disk))
        console.click_text("Upload")
    # The stack imports the joined parts in the background; the page follows until active.
    WebDriverWait(browser, 180).until(lambda d: d.find_elements(By.ID, "download"))
    assert "active" in console.find("main").text
    if in_parts:
        parts_sent = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('partNumber='))")
        assert len(parts_sent) == 1 and "partNumber=1" in parts_sent[0] and "partNumber=2" not in parts_sent[0], parts_sent
        assert saved_plan(browser, image_id) is None
    stored = curl_json(service, token_of(service, admin), "GET", f"/v2/images/{image_id}")
    assert stored["size"] == len(data) and stored["os_hash_value"] == hashlib.sha512(data).hexdigest()

    # Download: the same bytes land in the browser's download folder.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    console.click("#download")
    assert wait_for(lambda: [f for f in downloads.iterdir() if f.stat().st_size == len(data)
                             and not f.name.endswith(".crdownload")]), list(downloads.iterdir())
    assert next(downloads.iterdir()).read_bytes() == data

    # An administrator deactivates it (no download while so) and reactivates it.
    console.click_text("Deactivate")
    console.text_appears("main", "deactivated")
    assert not browser.find_elements(By.ID, "download")
    console.shot("image-deactivated")
    colleague = service.account("admin", "operator")  # a member of the image's own tenant
    refused = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                              f"X-Auth-Token: {token_of(service, colleague)}",
                              f"{service.root}/v2/images/{image_id}/file"], capture_output=True, text=True)
    assert refused.stdout == "403", refused.stdout
    console.click_text("Reactivate")
    console.find("#download")
    assert console.errors_besides("status of 413", "ERR_BLOCKED_BY_CLIENT") == []


def test_a_running_import_shows_its_progress_live_until_it_ends(importing, web, browser):
    """A web-download import of 2 MiB trickling in over 8 s (the worker reports every 4 s):
    its task page shows a progress bar that moves, then success and no bar."""
    directory, base = web
    data = (b"console import progress\n" * 90_000)[:32 * 64 * 1024]
    (directory / "disk.slow").write_bytes(data)
    alice = importing.account("acme", "alice")
    token = token_of(importing, alice)
    image_id = curl_json(importing, token, "POST", "/v2/images",
                         {"name": "trickled", "disk_format": "raw", "container_format": "bare"})["id"]
    curl_json(importing, token, "POST", f"/v2/images/{image_id}/import",
              {"method": {"name": "web-download", "uri": f"{base}/disk.slow"}})
    task_id = curl_json(importing, token, "GET", f"/v2/images/{image_id}/tasks")["tasks"][0]["id"]

    console = Console(browser, importing.root)
    console.log_in(alice)
    console.open(f"#/tasks/{task_id}")
    bar = "#task-progress progress"
    console.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, bar)
                       and 0 < float(d.find_element(By.CSS_SELECTOR, bar).get_attribute("value")))
    shown = browser.find_element(By.CSS_SELECTOR, bar)
    assert int(shown.get_attribute("max")) == len(data)
    assert float(shown.get_attribute("value")) < len(data), "the bar appeared only once all bytes were in"
    assert "MiB moved" in console.find("#task-progress").text
    console.shot("task-progress")
    WebDriverWait(browser, 180).until(EC.text_to_be_present_in_element((By.ID, "task"), "success"))
    assert not browser.find_elements(By.ID, "task-progress")
    assert console.errors() == []


def curl_json(service, token, method, path, body=None):
    """An API call with curl, as a person with a token would make it; the reply's JSON."""
    command = ["curl", "-s", "-f", "-X", method, "-H", f"X-Auth-Token: {token}", f"{service.root}{path}"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    reply = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(reply) if reply.strip() else None


def saved_plan(browser, image_id):
    """The console's note, in localStorage, of how far the staged upload of an image got."""
    saved = browser.execute_script("return localStorage.getItem('cloud-images-uploads')")
    return json.loads(saved or "{}").get(image_id)


def curl_password_login(service, user, password):
    reply = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json",
                            "-d", json.dumps({"auth": {"passwordCredentials": {"username": user, "password": password}}}),
                            f"{service.root}/v2.0/tokens"], capture_output=True, text=True)
    return int(reply.stdout)


def test_the_console_refuses_cross_site_changes_and_serves_a_strict_policy(service):
    alice = service.account("acme", "alice")
    login = subprocess.run(["curl", "-s", "-i", "-H", "Content-Type: application/json", "-d",
                            json.dumps({"username": alice["user_name"], "password": alice["password"]}),
                            f"{service.root}/console/session"], capture_output=True, text=True, check=True)
    cookie_line = next(line for line in login.stdout.splitlines() if line.lower().startswith("set-cookie:"))
    assert "HttpOnly" in cookie_line and "SameSite=Strict" in cookie_line and "Path=/" in cookie_line
    cookie = cookie_line.split(":", 1)[1].split(";", 1)[0].strip()

    # A read with the cookie works; a change without the console's header is refused, as a
    # form another site posted would be, and changes nothing.
    listed = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Cookie: {cookie}",
                             f"{service.root}/v2/images"], capture_output=True, text=True)
    assert listed.stdout == "200"
    name = f"csrf-{uuid.uuid4().hex}"
    forged = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", f"Cookie: {cookie}", "-H",
                             "Content-Type: application/json", "-d", json.dumps({"name": name}),
                             f"{service.root}/v2/images"], capture_output=True, text=True)
    body, status = forged.stdout.rsplit("\n", 1)
    assert status == "403" and "X-Console-Request" in json.loads(body)["error"]["message"]
    images = subprocess.run(["curl", "-s", "-H", f"Cookie: {cookie}", f"{service.root}/v2/images?name={name}"],
                            capture_output=True, text=True)
    assert json.loads(images.stdout)["images"] == []

    page = subprocess.run(["curl", "-s", "-i", f"{service.root}/console/"], capture_output=True, text=True)
    headers = page.stdout.lower()
    assert "content-security-policy: default-src 'none'; script-src 'self'" in headers
    assert "x-frame-options: deny" in headers and "<script" in headers and "inline" not in headers


def token_of(service, account):
    reply = subprocess.run(["curl", "-s", "-H", "Content-Type: application/json", "-d", json.dumps(
        {"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": account["user_name"], "apiKey": account["api_key"]}}}),
        f"{service.root}/v2.0/tokens"], capture_output=True, text=True, check=True)
    return json.loads(reply.stdout)["access"]["token"]["id"]


def curl_login(service, user, api_key):
    reply = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json",
                            "-d", json.dumps({"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": user, "apiKey": api_key}}}),
                            f"{service.root}/v2.0/tokens"], capture_output=True, text=True)
    return int(reply.stdout)
