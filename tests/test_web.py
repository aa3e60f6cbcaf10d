"""The web page (a2v_jax.web) end to end, in a real headless browser.

One server (`python -m a2v_jax.web`, the shipped model, no adaptation) and
one Chromium session, in one test: the page makes a video from the
astronaut and a short wav, every kind of bad input gets its line in the
page while the server keeps serving, and a second user's request (through
gradio_client, spoken text) queues behind the page's and is served.

Needs the web extra (gradio, selenium) and Debian's chromium and
chromium-driver; skipped with the reason when one is missing (CI installs
them: .ci/run). Selenium is pointed at the system chromedriver, so it never
downloads a browser or a driver.
"""
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
from PIL import Image
import pytest
import soundfile

pytest.importorskip("gradio", reason="needs the web extra: pip install -e "
                    "'.[web]' (or EXTRAS=dev,web ./setup.sh)")
pytest.importorskip("selenium", reason="needs the web extra (selenium)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from a2v_jax import web  # noqa: E402
from a2v_jax.media import video  # noqa: E402

_CHROME = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                               "google-chrome"))), None)
_DRIVER = shutil.which("chromedriver") or next(filter(os.path.exists, (
    "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")), None)
pytestmark = pytest.mark.skipif(
    not (_CHROME and _DRIVER),
    reason="needs a system Chromium and its driver: apt-get install chromium "
    "chromium-driver (.ci/run installs them)")

CLIP_S = 1.2  # 30 frames: one generator chunk.
SERVER_START_S = 300
RESULT_S = 240


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """The inputs of every case, with distinct names (the page shows them)."""
  d = tmp_path_factory.mktemp("web_inputs")
  from skimage import data as skdata
  astronaut = skdata.astronaut()
  Image.fromarray(astronaut).save(d / "astronaut.png")
  Image.fromarray(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)).save(
      d / "two_people.png")
  Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(d / "wall.png")
  # 12000 x 12000 px in its header, a few hundred bytes on disk: refused
  # before decoding.
  Image.new("L", (1, 1)).save(d / "tiny.png")
  _write_png_header(d / "huge.png", 12000, 12000)
  t = np.arange(int(16000 * CLIP_S)) / 16000
  speech_like = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(
      2 * np.pi * 3 * t))
  soundfile.write(d / "speech.wav", speech_like.astype(np.float32), 16000)
  soundfile.write(d / "short.wav", speech_like[:8000].astype(np.float32), 16000)
  soundfile.write(d / "silent.wav", np.zeros(16000, np.float32), 16000)
  (d / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " +
                                  bytes(range(256)) * 8)
  return d


def _write_png_header(path, width, height):
  """A PNG that declares width x height but holds almost no pixel data."""
  import struct
  import zlib

  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body +
            struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                   chunk(b"IDAT", zlib.compress(b"\0" * (3 * width + 1))) +
                   chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def server():
  """`python -m a2v_jax.web` on a free port: (url, process)."""
  import portpicker
  port = portpicker.pick_unused_port()
  # Full XLA optimisation, unlike the other tests: the server compiles the
  # generator once and runs it for five chunks, and without optimisation
  # it spent 1.7x the CPU time generating (8.4 -> 9.8 CPU s warm-up,
  # 6.3 -> 10.9 for two 1.2 s clips).
  env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
  env.pop("XLA_FLAGS", None)  # One CPU device, as a user runs it.
  proc = subprocess.Popen(
      [sys.executable, "-m", "a2v_jax.web", f"--port={port}"],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
  lines = []
  url = None
  deadline = time.monotonic() + SERVER_START_S
  # The server prints its address once the model is loaded and compiled.
  for line in proc.stdout:
    lines.append(line)
    match = re.search(r"a2v-jax web page: (http://\S+)", line)
    if match:
      url = match.group(1)
      break
    if time.monotonic() > deadline:
      break
  if url is None:
    proc.kill()
    pytest.fail("the server printed no address:\n" + "".join(lines[-30:]))
  # Keep draining its log so that it never blocks on a full pipe.
  threading.Thread(target=lambda: [None for _ in proc.stdout],
                   daemon=True).start()
  yield url, proc
  proc.terminate()
  try:
    proc.wait(timeout=20)
  except subprocess.TimeoutExpired:
    proc.kill()


@pytest.fixture(scope="module")
def browser(server):
  """Headless Chromium on the page."""
  os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium download
  options = webdriver.ChromeOptions()
  options.binary_location = _CHROME
  for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1280,1100", "--mute-audio", "--disable-gpu"):
    options.add_argument(arg)
  driver = webdriver.Chrome(service=Service(_DRIVER), options=options)
  try:
    driver.get(server[0])
    WebDriverWait(driver, 60).until(
        lambda d: d.find_elements(By.ID, "generate"))
    yield driver
  finally:
    driver.quit()


def _upload(driver, elem_id, path):
  """Puts a file into the photo or audio component; waits until it is there."""
  root = driver.find_element(By.ID, elem_id)
  for label in ("Clear", "Remove Image"):
    for button in root.find_elements(By.CSS_SELECTOR,
                                     f"button[aria-label='{label}']"):
      button.click()
  WebDriverWait(driver, 30).until(lambda d: d.find_elements(
      By.CSS_SELECTOR, f"#{elem_id} input[type=file]"))
  driver.find_element(By.CSS_SELECTOR,
                      f"#{elem_id} input[type=file]").send_keys(str(path))
  WebDriverWait(driver, 60).until(lambda d: "/" + path.name in d.find_element(
      By.ID, elem_id).get_attribute("innerHTML"))


def _status(driver):
  """The status box's text (read in one script: Gradio re-renders it)."""
  return driver.execute_script(
      "return document.getElementById('status').innerText;")


def _generate(driver, expect):
  """Presses Generate; returns the status line once it contains `expect`."""
  driver.find_element(By.ID, "generate").click()
  WebDriverWait(driver, RESULT_S).until(lambda d: expect in _status(d))
  return _status(driver)


def test_page_end_to_end(server, browser, files, tmp_path):
  """One test, so that pytest-xdist never starts a second server and browser."""
  _check_video(server, browser, files, tmp_path)
  for photo, audio, expect in BAD_INPUTS:
    _check_bad_input(server, browser, files, photo, audio, expect)
  _check_second_user(browser, files)


def _check_video(server, browser, files, tmp_path):
  """Astronaut + wav through the page -> an mp4 of the audio's length."""
  assert server[0].startswith("http://127.0.0.1:")
  _upload(browser, "photo", files / "astronaut.png")
  _upload(browser, "audio", files / "speech.wav")
  text = _generate(browser, "Done")
  assert "30 frames" in text, text
  src = browser.execute_script(
      "return document.querySelector('#result video').getAttribute('src');")
  out = tmp_path / "result.mp4"
  with urllib.request.urlopen(src, timeout=30) as response:
    out.write_bytes(response.read())
  info = video.probe_streams(out)
  assert (info.video_codec, info.audio_codec) == ("h264", "aac")
  assert info.video_frames == 30
  assert abs(info.video_duration_s - CLIP_S) < 0.1
  assert abs(info.audio_duration_s - CLIP_S) < 0.1


# (photo, audio, what the page's status line must say)
BAD_INPUTS = [
    ("wall.png", "speech.wav", "no face found in photo wall.png"),
    ("huge.png", "speech.wav", "huge.png is 12000x12000 px"),
    ("tiny.png", "speech.wav", "smaller than the model's"),
    ("astronaut.png", "corrupt.wav", "corrupt.wav"),
    ("astronaut.png", "silent.wav", "the audio is silent"),
]


def _check_bad_input(server, browser, files, photo, audio, expect):
  _upload(browser, "photo", files / photo)
  _upload(browser, "audio", files / audio)
  text = _generate(browser, expect)
  assert text.startswith("Cannot make this video"), (photo, audio, text)
  assert "Traceback" not in browser.page_source, (photo, audio)
  assert server[1].poll() is None, (photo, audio)  # still serving


def _check_second_user(browser, files):
  """The page's request (several faces) and a client's (spoken text) at once:
  the client's waits in the queue and is served."""
  from gradio_client import Client
  from gradio_client import handle_file
  client = Client(browser.current_url, verbose=False)
  _upload(browser, "photo", files / "two_people.png")
  _upload(browser, "audio", files / "short.wav")
  browser.find_element(By.ID, "generate").click()
  job = client.submit(handle_file(str(files / "astronaut.png")), None,
                      "Hello there.", next(iter(web.VOICES)),
                      web.SPEECH_TEXT, 0, False, api_name="/generate")
  WebDriverWait(browser, RESULT_S).until(lambda d: "Done" in _status(d))
  assert re.search(r"shows \d+ faces; the largest was animated",
                   _status(browser)), _status(browser)
  result, report = job.result(timeout=RESULT_S)
  assert report.startswith("**Done**"), report
  info = video.probe_streams(result["video"] if isinstance(result, dict)
                             else result)
  assert info.audio_codec == "aac" and info.video_frames > 10
