"""python -m a2v_jax.generate: requests, atomic mp4s, aligned streams."""
import json
import os
import shutil

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
def model():
  return lib.shared_export()


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


# The command's own flags: a2v_jax.evaluate defines --model and --out too.
_FLAGS = flags.FlagValues()


def _run_main(argv, capsys):
  """Runs the command in-process (the jitted functions stay compiled)."""
  generate.define_flags(_FLAGS)
  _FLAGS.unparse_flags()
  _FLAGS(["generate"] + argv)
  try:
    code = 0
    try:
      generate.main(["generate"], _FLAGS)
    except SystemExit as e:
      code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
  finally:
    _FLAGS.unparse_flags()


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


# ~150 s of compiling the SPADE adaptation step on 2 cores: run with
# `pytest -m slow`. CI still adapts a SPADE export through the quickstart
# notebook (tests/test_notebooks.py) and a toy generator in test_inference.
@pytest.mark.slow
def test_adaptation_from_the_cli_and_the_api(model, head, inputs, tmp_path,
                                             capsys):
  """--adapt_epochs + --paste_back end to end; then TalkingHead.adapt.

  One test, so the suite compiles the SPADE adaptation step once: the API
  call reuses the CLI's compiled step (each epoch then costs only compute).
  """
  out = tmp_path / "talking.mp4"
  code, stdout, stderr = _run_main(
      [f"--model={model}", f"--image={inputs['image']}",
       f"--audio={inputs['stereo']}", f"--out={out}", "--paste_back",
       "--adapt_epochs=2", f"--chunk_frames={lib.CHUNK_FRAMES}"], capsys)
  assert code == 0, stderr
  assert "wrote" in stdout and "adaptation" in stdout
  assert "compile" in stdout and "2 epochs" in stdout
  frames, fps = video.read_video(out)
  assert fps == 25.0 and frames.shape == (23, 512, 512, 3)  # 22.5 -> 23
  info = video.probe_streams(out)
  assert (info.video_codec, info.audio_codec) == ("h264", "aac")
  assert abs(info.audio_duration_s - 0.9) < 0.05
  assert not _leftovers(tmp_path)

  identity = head.adapt(inputs["image"], epochs=4, learning_rate=1e-2)
  stats = identity.adapt_stats
  assert stats.compile_s == 0.0  # compiled by the CLI run above
  assert stats.losses.shape == (4, 1) and len(stats.epoch_s) == 4
  assert stats.losses[-1, 0] < stats.losses[0, 0]
  before = head.generator_variables["params"]["conv_img"]["kernel"]
  after = identity.generator_variables["params"]["conv_img"]["kernel"]
  assert not np.allclose(before, after)
  frames = head.generate(identity, lib.speech_like(0.4),
                         sample_rate=lib.SAMPLE_RATE)
  assert frames.shape == (10, lib.CROP, lib.CROP, 3)


def _bad_inputs(model, inputs, d):
  """(name, model, image, audio, out, words in the error) per bad input."""
  grey = d / "grey.png"
  cv2.imwrite(str(grey), np.full((200, 200, 3), 128, np.uint8))
  tiny = d / "tiny.png"
  cv2.imwrite(str(tiny), lib.astronaut()[:24, :24])
  corrupt_jpg = d / "corrupt.jpg"
  ok, buf = cv2.imencode(".jpg", lib.astronaut())
  corrupt_jpg.write_bytes(buf.tobytes()[:300])
  empty = d / "empty.wav"
  empty.write_bytes(b"")
  garbage = d / "garbage.wav"
  garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
  mute_video = d / "mute.mp4"
  video.write_video(mute_video, np.zeros((5, 32, 32, 3), np.uint8), 25.0)
  old = d / "old_export"
  shutil.copytree(model, old)
  _set_format_version(old, 0)
  out = str(d / "never.mp4")
  img, wav = inputs["image"], inputs["speech"]
  return [
      ("no face", model, grey, wav, out, "no face"),
      ("too small", model, tiny, wav, out, "smaller than"),
      ("corrupt image", model, corrupt_jpg, wav, out, "corrupt"),
      ("empty audio", model, img, empty, out, "empty"),
      ("corrupt audio", model, img, garbage, out, "cannot decode"),
      ("no audio stream", model, img, mute_video, out, "no audio stream"),
      ("old export", old, img, wav, out, "format version"),
      ("unwritable out", model, img, wav, str(d / "no" / "dir" / "o.mp4"),
       "cannot write"),
  ]


def _set_format_version(export_dir, version):
  for root, _, files in os.walk(os.path.join(export_dir, "metadata")):
    for name in files:
      path = os.path.join(root, name)
      try:
        with open(path) as f:
          data = json.load(f)
      except (UnicodeDecodeError, json.JSONDecodeError):
        continue
      if isinstance(data, dict) and "format_version" in data:
        data["format_version"] = version
        with open(path, "w") as f:
          json.dump(data, f)
        return
  raise AssertionError("no metadata JSON in the export")


def test_every_bad_input_is_one_line_and_leaves_no_mp4(model, inputs, tmp_path,
                                                       capsys):
  for name, mdl, image, audio, out, words in _bad_inputs(model, inputs,
                                                         tmp_path):
    code, _, stderr = _run_main([f"--model={mdl}", f"--image={image}",
                                 f"--audio={audio}", f"--out={out}"], capsys)
    assert code == 1, name
    last = stderr.strip().splitlines()[-1]  # after the tqdm bars
    assert last.startswith("error:") and words in last, (name, last)
    assert "Traceback" not in stderr, name
    assert not os.path.exists(out) and not _leftovers(tmp_path), name


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
  mask = os.umask(0)
  os.umask(mask)
  for r in results:
    assert video.probe_streams(r.out).video_frames == r.frames
    # Readable like any file the user writes, not mkstemp's private 0600.
    assert os.stat(r.out).st_mode & 0o777 == 0o666 & ~mask
  bad = tmp_path / "bad.csv"
  bad.write_text("image,audio\nx.jpg,y.wav\n")
  with pytest.raises(generate.RequestError, match="row 1"):
    generate.read_manifest(str(bad))


def test_a_bad_request_does_not_stop_the_batch(model, head, inputs, tmp_path,
                                               capsys, monkeypatch):
  """--keep_going (the default for a manifest): the good request is made,
  the photo without a face is refused with its reason and leaves no file,
  a summary follows, and the exit status is 1."""
  grey = tmp_path / "grey.png"
  cv2.imwrite(str(grey), np.full((200, 200, 3), 128, np.uint8))
  manifest = tmp_path / "batch.csv"
  manifest.write_text("image,audio,out\n"
                      f"{grey},{inputs['speech']},bad.mp4\n"
                      f"{inputs['image']},{inputs['speech']},good.mp4\n")
  monkeypatch.setattr(inference.TalkingHead, "from_export",
                      classmethod(lambda cls, *a, **k: head))
  code, stdout, stderr = _run_main(
      [f"--model={model}", f"--manifest={manifest}",
       f"--chunk_frames={lib.CHUNK_FRAMES}"], capsys)
  assert code == 1, stderr
  assert "refused" in stdout and "no face" in stdout
  assert "wrote" in stdout and "made 1 of 2 videos" in stdout
  assert stderr.strip().splitlines()[-1].startswith("error: 1 of 2 request")
  assert "Traceback" not in stderr
  assert (tmp_path / "good.mp4").exists()
  assert not (tmp_path / "bad.mp4").exists() and not _leftovers(tmp_path)
  # --nokeep_going: the first bad request stops the batch, nothing is made.
  (tmp_path / "good.mp4").unlink()
  code, _, stderr = _run_main(
      [f"--model={model}", f"--manifest={manifest}", "--nokeep_going"],
      capsys)
  assert code == 1 and "no face" in stderr.strip().splitlines()[-1]
  assert not (tmp_path / "good.mp4").exists()


def test_output_photo_and_face(model, head, inputs, tmp_path, capsys):
  """--paste_back (--output=photo): photo-size frames; --output=face: crops."""
  outs = {k: tmp_path / f"{k}.mp4" for k in ("photo", "face")}
  for kind, flag in (("photo", "--paste_back"), ("face", "--output=face")):
    code, stdout, stderr = _run_main(
        [f"--model={model}", f"--image={inputs['image']}",
         f"--audio={inputs['stereo']}", f"--out={outs[kind]}", flag,
         f"--chunk_frames={lib.CHUNK_FRAMES}"], capsys)
    assert code == 0, stderr
  photo_frames, _ = video.read_video(outs["photo"])
  face_frames, _ = video.read_video(outs["face"])
  assert photo_frames.shape == (23, 512, 512, 3)
  assert face_frames.shape == (23, lib.CROP, lib.CROP, 3)
  # Above the mouth the photo is untouched (up to H.264 at CRF 18).
  top = 110  # the astronaut's eyes span y 98-107, her mouth 139-156
  luma = np.array([0.299, 0.587, 0.114])  # yuv420p keeps luma sharp
  error = (photo_frames[:, :top] - lib.astronaut()[:top].astype(float)) @ luma
  assert 10 * np.log10(255**2 / np.mean(error**2)) > 38.0  # PSNR, dB
  assert photo_frames[:, :top].std(axis=0).mean() < 1.0  # and it is still
  code, _, stderr = _run_main(
      [f"--model={model}", f"--image={inputs['image']}",
       f"--audio={inputs['stereo']}", f"--out={tmp_path / 'x.mp4'}",
       "--paste_back", "--output=photo_whole_face"], capsys)
  assert code == 1 and "not both" in stderr.strip().splitlines()[-1]
  code, _, stderr = _run_main(
      [f"--model={model}", f"--image={inputs['image']}",
       f"--audio={inputs['stereo']}", f"--out={tmp_path / 'x.mp4'}",
       "--paste_back", "--crf=60"], capsys)
  assert code == 1 and "0-51" in stderr.strip().splitlines()[-1]


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


def test_ten_minutes_stream_in_chunks_with_aligned_streams(
    model, inputs, tmp_path, monkeypatch):
  """10 min of odd-rate stereo audio -> an mp4 whose streams agree to 1 frame.

  Everything but the two networks is real (audio decoding and resampling,
  the chunked MFCC windows, the frame count, the streamed H.264 + AAC mux,
  with ffmpeg's fast AAC coder). The encoder and generator, which set no
  timing, are replaced by stand-ins (the reference face for every frame):
  15,000 frames of even the tiny SPADE take minutes on a CPU;
  benchmarks/generate.py makes 10 real minutes. Frames reach the writer one
  fixed-size chunk at a time, so memory does not grow with the audio.
  """
  seconds, rate, chunk = 600.0, 22222, 250
  second = lib.speech_like(1.0, rate, channels=2)
  audio = lib.write_wav(tmp_path / "ten_minutes.wav",
                        np.tile(second, (int(seconds), 1)), rate)
  monkeypatch.setattr(inference, "_encode", _no_features)
  monkeypatch.setattr(inference, "_render", _reference_face)
  monkeypatch.setattr(stream_writer, "AAC_CODER", "fast")  # 3x faster AAC
  sizes = []
  write = stream_writer.StreamingVideoWriter.write
  monkeypatch.setattr(stream_writer.StreamingVideoWriter, "write",
                      lambda self, frames: (sizes.append(len(frames)),
                                            write(self, frames))[1])
  head = inference.TalkingHead.from_export(model, chunk_frames=chunk)
  out = tmp_path / "ten_minutes.mp4"
  (result,) = generate.run(model, [generate.Request(inputs["image"], audio,
                                                    str(out))],
                           head=head, progress=False)
  assert result.frames == 15000 and sum(sizes) == 15000
  assert max(sizes) == chunk
  info = video.probe_streams(out)
  assert (info.video_codec, info.audio_codec) == ("h264", "aac")
  frame = 1.0 / 25.0
  assert info.video_frames == 15000
  assert abs(info.video_duration_s - seconds) <= frame
  assert abs(info.audio_duration_s - seconds) <= frame
  assert abs(info.video_duration_s - info.audio_duration_s) <= frame
  assert not _leftovers(tmp_path)


def _no_features(encoder, variables, windows):
  """Stand-in for inference._encode: [C, W, S, F] windows -> zeros [C, 1]."""
  del encoder, variables
  assert windows.ndim == 4
  return np.zeros((windows.shape[0], 1), np.float32)


def _reference_face(generator, variables, face, feats):
  """Stand-in for inference._render: the reference face for every frame."""
  del generator, variables
  face = np.clip(np.round((np.asarray(face[0]) + 1.0) * 127.5), 0, 255)
  return np.broadcast_to(face.astype(np.uint8), (feats.shape[0],) + face.shape)
