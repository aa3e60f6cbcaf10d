"""python -m a2v_jax.generate: requests, atomic mp4s, aligned streams."""
import json
import os

from absl import flags
import cv2
import numpy as np
import pytest

from a2v_jax import generate
from a2v_jax import inference
from a2v_jax.media import stream_writer
from a2v_jax.media import video

import talking_head_testlib as lib


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  return lib.write_export(str(tmp_path_factory.mktemp("exp") / "model"))


@pytest.fixture(scope="module")
def head(model):
  return inference.TalkingHead.from_export(model,
                                           chunk_frames=lib.CHUNK_FRAMES)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  d = tmp_path_factory.mktemp("inputs")
  image = str(d / "astronaut.png")
  cv2.imwrite(image, lib.astronaut()[..., ::-1])
  speech = lib.write_wav(d / "speech.wav", lib.speech_like(1.2))
  stereo = lib.write_wav(d / "stereo.wav",
                         lib.speech_like(0.9, 22050, channels=2), 22050)
  return dict(dir=d, image=image, speech=speech, stereo=stereo)


def _leftovers(folder):
  return [n for n in os.listdir(folder) if n.startswith(".partial")]


def _run_main(argv, capsys):
  """Runs the command in-process (the jitted functions stay compiled)."""
  generate.define_flags()
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["generate"] + argv)
  try:
    code = 0
    try:
      generate.main(["generate"])
    except SystemExit as e:
      code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
  finally:
    flags.FLAGS.unparse_flags()


def test_unwritable_output_fails_before_any_work(inputs, tmp_path, capsys):
  missing = tmp_path / "no" / "such" / "dir" / "out.mp4"
  code, _, stderr = _run_main(
      ["--model=/nonexistent/model", f"--image={inputs['image']}",
       f"--audio={inputs['speech']}", f"--out={missing}"], capsys)
  assert code == 1
  lines = stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: cannot write")
  assert "does not exist" in lines[0]
  # The model path is wrong too: the output was checked first.
  assert "model" not in lines[0]


def test_read_only_folder_and_bad_suffix_are_refused(tmp_path):
  if os.geteuid() == 0:
    pytest.skip("root can write to read-only folders")
  ro = tmp_path / "ro"
  ro.mkdir()
  os.chmod(ro, 0o500)
  try:
    with pytest.raises(stream_writer.StreamWriterError, match="not writable"):
      stream_writer.check_output_path(ro / "out.mp4")
  finally:
    os.chmod(ro, 0o700)


def test_bad_suffix_and_mismatched_lists_are_one_line_errors(tmp_path):
  with pytest.raises(stream_writer.StreamWriterError, match="suffix"):
    stream_writer.check_output_path(tmp_path / "out.gif")
  with pytest.raises(generate.RequestError, match="one --out per request"):
    generate.requests_from_lists(["a.jpg", "b.jpg"], ["s.wav"], ["o.mp4"])
  reqs = generate.requests_from_lists(["a.jpg"], ["s.wav", "t.wav"],
                                      ["1.mp4", "2.mp4"])
  assert [r.image for r in reqs] == ["a.jpg", "a.jpg"]
  with pytest.raises(generate.RequestError, match="twice"):
    generate.check_requests([generate.Request("a", "b", str(tmp_path / "o.mp4"))]
                            * 2)


def test_cli_writes_a_pasted_back_mp4_with_adaptation(model, head, inputs,
                                                      tmp_path, capsys):
  out = tmp_path / "talking.mp4"
  code, stdout, stderr = _run_main(
      [f"--model={model}", f"--image={inputs['image']}",
       f"--audio={inputs['stereo']}", f"--out={out}", "--paste_back",
       "--adapt_epochs=1", f"--chunk_frames={lib.CHUNK_FRAMES}"], capsys)
  assert code == 0, stderr
  assert "wrote" in stdout and "adaptation" in stdout
  frames, fps = video.read_video(out)
  assert fps == 25.0 and frames.shape == (23, 512, 512, 3)  # 22.5 -> 23
  info = video.probe_streams(out)
  assert abs(info.audio_duration_s - 0.9) < 0.05
  assert not _leftovers(tmp_path)


def test_cli_errors_are_one_line_and_leave_no_file(model, inputs, tmp_path,
                                                   capsys):
  grey = tmp_path / "grey.png"
  cv2.imwrite(str(grey), np.full((200, 200, 3), 128, np.uint8))
  empty = tmp_path / "empty.wav"
  empty.write_bytes(b"")
  for image, audio, word in ((str(grey), inputs["speech"], "no face"),
                             (inputs["image"], str(empty), "empty")):
    out = tmp_path / "never.mp4"
    code, _, stderr = _run_main([f"--model={model}", f"--image={image}",
                                 f"--audio={audio}", f"--out={out}"], capsys)
    assert code == 1
    last = stderr.strip().splitlines()[-1]  # after the tqdm bars
    assert last.startswith("error:") and word in last
    assert "Traceback" not in stderr
    assert not out.exists() and not _leftovers(tmp_path)


def test_manifest_csv_and_jsonl(model, head, inputs, tmp_path):
  csv_path = tmp_path / "requests.csv"
  csv_path.write_text("image,audio,out\n"
                      f"{inputs['image']},{inputs['speech']},a.mp4\n"
                      f"{inputs['image']},{inputs['stereo']},b.mp4\n")
  jsonl = tmp_path / "requests.jsonl"
  jsonl.write_text(json.dumps({"image": inputs["image"],
                               "audio": inputs["speech"], "out": "c.mp4"}))
  requests = (generate.read_manifest(str(csv_path))
              + generate.read_manifest(str(jsonl)))
  assert [os.path.basename(r.out) for r in requests] == ["a.mp4", "b.mp4",
                                                         "c.mp4"]
  results = generate.run(model, requests, head=head, progress=False)
  assert [r.frames for r in results] == [30, 23, 30]
  for r in results:
    assert video.probe_streams(r.out).video_frames == r.frames
  bad = tmp_path / "bad.csv"
  bad.write_text("image,audio\nx.jpg,y.wav\n")
  with pytest.raises(generate.RequestError, match="row 1"):
    generate.read_manifest(str(bad))


def test_failure_while_streaming_leaves_no_partial_mp4(model, head, inputs,
                                                       tmp_path, monkeypatch):
  original = head.stream

  def broken(*args, **kwargs):
    for i, chunk in enumerate(original(*args, **kwargs)):
      if i == 1:
        raise RuntimeError("device lost")
      yield chunk

  monkeypatch.setattr(head, "stream", broken)
  out = tmp_path / "partial.mp4"
  with pytest.raises(RuntimeError, match="device lost"):
    generate.run(model, [generate.Request(inputs["image"], inputs["speech"],
                                          str(out))], head=head,
                 progress=False)
  assert not out.exists() and not _leftovers(tmp_path)


def test_minute_of_audio_keeps_frames_audio_and_mp4_aligned(model, head,
                                                            inputs, tmp_path):
  seconds = 60.0
  audio = lib.write_wav(tmp_path / "minute.wav",
                        lib.speech_like(seconds, 22050, channels=2), 22050)
  out = tmp_path / "minute.mp4"
  (result,) = generate.run(model, [generate.Request(inputs["image"], audio,
                                                    str(out))],
                           head=head, progress=False)
  assert result.frames == 1500
  info = video.probe_streams(out)
  frame = 1.0 / 25.0
  assert info.video_frames == 1500
  assert abs(info.video_duration_s - seconds) <= frame
  assert abs(info.audio_duration_s - seconds) <= frame
  assert abs(info.video_duration_s - info.audio_duration_s) <= frame
