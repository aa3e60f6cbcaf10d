"""The web page's input checks (a2v_jax.web), without a server or a browser."""
import struct
import zlib

import numpy as np
from PIL import Image
import pytest

from a2v_jax import photo as photo_lib
from a2v_jax import web


def test_large_photo_is_scaled_down(tmp_path):
  path = tmp_path / "big.png"
  Image.fromarray(np.zeros((2100, 3000, 3), np.uint8)).save(path)
  rgb, notes = web.load_photo(str(path), "big.png")
  assert rgb.shape == (1434, 2048, 3)
  assert notes == ["The photo (3000x2100 px) was scaled down to 2048x1434 px."]


def _png_header(path, width, height):
  """A PNG that declares width x height px and holds hardly any pixels."""
  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body +
            struct.pack(">I", zlib.crc32(kind + body)))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                   chunk(b"IDAT", zlib.compress(b"\0" * (3 * width + 1))) +
                   chunk(b"IEND", b""))


@pytest.mark.parametrize("side,match", [
    (12000, r"huge.png is 12000x12000 px \(144 megapixels\); the page takes "
     "up to 50"),
    (20000, r"huge.png is too large to decode")])
def test_huge_photo_is_refused_before_decoding(tmp_path, side, match):
  path = tmp_path / "huge.png"
  _png_header(path, side, side)
  with pytest.raises(web.WebInputError, match=match):
    web.load_photo(str(path), "huge.png")


def test_corrupt_photo_is_a_photo_error(tmp_path):
  path = tmp_path / "x.jpg"
  path.write_bytes(b"not a jpeg at all")
  with pytest.raises(photo_lib.PhotoError, match="corrupt or not an image"):
    web.load_photo(str(path), "x.jpg")


def test_uploads_from_gradio_payloads():
  assert web.as_upload(None) is None
  assert web.as_upload({"path": "/tmp/g/abc/me.jpg", "orig_name": "me.jpg"}) \
      == web.Upload("/tmp/g/abc/me.jpg", "me.jpg")
  assert web.as_upload("/tmp/g/a.wav") == web.Upload("/tmp/g/a.wav", "a.wav")


def test_error_report_is_one_line_and_never_a_trace():
  report = web.error_report(photo_lib.PhotoError(
      "no face found in photo <array>;\n pass a photo with one face."))
  assert report == ("**Cannot make this video**: no face found in photo "
                    "&lt;array&gt;; pass a photo with one face.")
  report = web.error_report(RuntimeError("XlaRuntimeError: RESOURCE_EXHAUSTED"
                                         " at /secret/path"))
  assert "secret" not in report and "RuntimeError" in report


@pytest.mark.parametrize("text,match", [("   ", "text box is empty"),
                                        ("word " * 200, "at most 500")])
def test_text_is_checked_before_speaking(text, match):
  with pytest.raises(web.WebInputError, match=match):
    web.speak(text, next(iter(web.VOICES)))
