r"""The web page's latency and memory, measured through a real browser.

  python benchmarks/web_page.py [--model=EXPORT_DIR] [--seconds=5] \
      [--requests=2] [--screenshot=docs/images/web.png]

Starts `python -m a2v_jax.web` on a free port, opens the page in headless
Chromium (Debian's chromium and chromium-driver, through selenium), uploads
the bundled portrait (scikit-image's astronaut) and --seconds of espeak-ng
speech, and presses Generate --requests times (paste-back on, no
adaptation), timing each press until the page shows the new video. It
samples the server's resident memory (RSS) every 0.1 s. Then it clicks the
two examples (portrait, sentence), generates once more and saves a
screenshot of the page with that result. Prints a Markdown table.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image
import portpicker
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from skimage import data as skdata
import soundfile

from a2v_jax.data import espeak
import md_table

_MODEL = flags.DEFINE_string("model", None, "Export; default the shipped one.")
_SECONDS = flags.DEFINE_float("seconds", 5.0, "Length of the clip.")
_REQUESTS = flags.DEFINE_integer("requests", 2, "Timed presses of Generate.")
_SCREENSHOT = flags.DEFINE_string("screenshot", None, "Where to save a PNG of "
                                  "the page with the examples' result.")
TEXT = ("Hello! This photo is talking. One picture and some speech make "
        "this video.")


def rss_mib(pid: int) -> float:
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS"):
          return int(line.split()[1]) / 1024
  except FileNotFoundError:
    pass
  return 0.0


def cpu_seconds(pid: int) -> float:
  """User + system CPU time of a process so far."""
  with open(f"/proc/{pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(model: str | None) -> tuple[subprocess.Popen, str]:
  cmd = [sys.executable, "-m", "a2v_jax.web",
         f"--port={portpicker.pick_unused_port()}"]
  if model:
    cmd.append(f"--model={model}")
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  for line in proc.stdout:
    match = re.search(r"a2v-jax web page: (http://\S+)", line)
    if match:
      threading.Thread(target=lambda: [None for _ in proc.stdout],
                       daemon=True).start()
      return proc, match.group(1)
  raise RuntimeError("the server exited before printing its address")


def open_browser(url: str):
  os.environ.setdefault("SE_OFFLINE", "true")
  options = webdriver.ChromeOptions()
  options.binary_location = shutil.which("chromium") or "chromium"
  for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1280,1000", "--mute-audio", "--hide-scrollbars"):
    options.add_argument(arg)
  driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                            options=options)
  driver.get(url)
  WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "generate"))
  return driver


def press_generate(driver, pid: int) -> tuple[float, float, float, str]:
  """(seconds from the press to the new video, the server's CPU seconds in
  that time, peak RSS MiB, status line)."""

  def src():  # read in one script: Gradio re-renders the video element
    return driver.execute_script(
        "const v = document.querySelector('#result video');"
        "return v ? v.getAttribute('src') : null;")
  peak, stop = [0.0], threading.Event()

  def sample():
    while not stop.is_set():
      peak[0] = max(peak[0], rss_mib(pid))
      time.sleep(0.1)
  sampler = threading.Thread(target=sample)
  sampler.start()
  old = src()
  cpu = cpu_seconds(pid)
  start = time.perf_counter()
  driver.find_element(By.ID, "generate").click()
  WebDriverWait(driver, 1800).until(lambda d: src() not in (None, old))
  seconds = time.perf_counter() - start
  cpu = cpu_seconds(pid) - cpu
  stop.set()
  sampler.join()
  return seconds, cpu, peak[0], driver.execute_script(
      "return document.getElementById('status').innerText;")


def main(argv):
  del argv
  work = tempfile.mkdtemp()
  photo = os.path.join(work, "astronaut.png")
  Image.fromarray(skdata.astronaut()).save(photo)
  speech = espeak.synthesize(TEXT, espeak.Voice("en-us", rate=160))
  n = int(_SECONDS.value * speech.sample_rate)
  wav = os.path.join(work, "speech.wav")
  soundfile.write(wav, np.pad(speech.audio, (0, max(0, n - len(speech.audio))))[:n],
                  speech.sample_rate)
  start = time.perf_counter()
  proc, url = start_server(_MODEL.value)
  startup_s = time.perf_counter() - start
  rows = [("server start (load, compile), until it prints its address",
           f"{startup_s:.1f}", f"{cpu_seconds(proc.pid):.1f}",
           f"{rss_mib(proc.pid):.0f}")]
  driver = open_browser(url)
  try:
    rows.append(("idle, page open", "", "", f"{rss_mib(proc.pid):.0f}"))
    driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(photo)
    driver.find_element(By.CSS_SELECTOR, "#audio input[type=file]").send_keys(wav)
    WebDriverWait(driver, 60).until(
        lambda d: "/speech.wav" in d.find_element(By.ID, "audio").get_attribute(
            "innerHTML") and "/astronaut.png" in d.find_element(
                By.ID, "photo").get_attribute("innerHTML"))
    for i in range(_REQUESTS.value):
      seconds, cpu, peak, _ = press_generate(driver, proc.pid)
      rows.append((f"press Generate -> video, {_SECONDS.value:g} s clip "
                   f"(request {i + 1})", f"{seconds:.1f}", f"{cpu:.1f}",
                   f"{peak:.0f} (peak)"))
    rows.append(("idle, after the requests", "", "",
                 f"{rss_mib(proc.pid):.0f}"))
    if _SCREENSHOT.value:
      driver.find_element(By.CSS_SELECTOR,
                          "#photo button[aria-label='Remove Image']").click()
      driver.find_element(
          By.XPATH, "//div[starts-with(text(), 'Hello! This photo')]").click()
      next(i for i in driver.find_elements(
          By.XPATH, "//img[contains(@src, 'astronaut.png')]")
           if not i.find_elements(By.XPATH, "ancestor::*[@id='photo']")).click()
      WebDriverWait(driver, 60).until(lambda d: "/astronaut.png" in d.find_element(
          By.ID, "photo").get_attribute("innerHTML"))
      seconds, cpu, peak, status = press_generate(driver, proc.pid)
      frames = re.search(r"\d+ frames \([^)]*\)", status)
      rows.append(("examples (spoken text) -> video, "
                   + (frames.group(0) if frames else status.split("\n")[0]),
                   f"{seconds:.1f}", f"{cpu:.1f}", f"{peak:.0f} (peak)"))
      time.sleep(2)  # the video's first frame
      height = driver.execute_script("return document.body.scrollHeight")
      driver.set_window_size(1280, min(int(height) + 40, 1400))
      driver.execute_script("window.scrollTo(0, 0);")
      time.sleep(1)
      driver.save_screenshot(_SCREENSHOT.value)
  finally:
    driver.quit()
    proc.terminate()
    proc.wait(timeout=30)
  print(f"load average at the end: {os.getloadavg()}")
  md_table.print_markdown(("step", "seconds", "server CPU s", "server RSS MiB"),
                          rows)


if __name__ == "__main__":
  app.run(main)
