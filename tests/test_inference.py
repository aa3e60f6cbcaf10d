"""One-shot inference: photo preparation, chunked generation, adaptation."""
import logging

import cv2
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2v_jax import adaptation
from a2v_jax import inference
from a2v_jax import photo
from a2v_jax.audio import features
from a2v_jax.audio import io as audio_io
from a2v_jax.media import video
from a2v_jax.models import layers
from a2v_jax.models import vgg

import talking_head_testlib as lib


@pytest.fixture(scope="module")
def head():
  return inference.TalkingHead.from_export(lib.shared_export(),
                                           chunk_frames=lib.CHUNK_FRAMES)


@pytest.fixture(scope="module")
def aligned(head):
  return head.prepare(lib.astronaut())


# ------------------------------------------------------------------ photos --

def test_prepare_aligns_like_the_dataset(head, aligned):
  assert aligned.face.shape == (lib.CROP, lib.CROP, 3)
  assert aligned.face.dtype == np.uint8 and aligned.num_faces == 1
  # The landmarks land on the template, as align_clip puts them.
  mapped = aligned.landmarks @ aligned.matrix[:, :2].T + aligned.matrix[:, 2]
  err = np.abs(mapped / lib.CROP - photo.align.CANONICAL_TEMPLATE).mean()
  assert err < 0.03
  again = head.prepare(aligned)
  assert again is aligned


def test_photo_without_a_face_is_one_line_error(head):
  grey = np.full((256, 256, 3), 128, np.uint8)
  with pytest.raises(photo.PhotoError, match="no face") as e:
    head.prepare(grey)
  assert "\n" not in str(e.value)


def test_several_faces_take_the_largest_and_warn(head, aligned, caplog):
  big = lib.astronaut()
  small = cv2.resize(big, (320, 320), interpolation=cv2.INTER_AREA)
  small = np.pad(small, ((96, 96), (0, 0), (0, 0)), constant_values=200)
  two = np.concatenate([small, big], axis=1)  # the big one on the right
  with caplog.at_level(logging.WARNING):
    result = head.prepare(two)
  # dlib's HOG also fires on the suit of the wider photo: >= 2 faces.
  assert result.num_faces >= 2
  assert any("faces; using the largest" in r.getMessage()
             for r in caplog.records)
  # The big face: the single photo's landmarks shifted by 320 px.
  shift = result.landmarks - aligned.landmarks - np.array([320.0, 0.0])
  assert np.abs(np.median(shift, axis=0)).max() < 6.0


def test_photo_smaller_than_the_crop_is_refused(head):
  with pytest.raises(photo.PhotoError, match="smaller than"):
    head.prepare(lib.astronaut()[:20, :40])


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0 not really a jpeg",
                                     "truncated"])
def test_corrupt_image_is_one_line_error(head, tmp_path, content):
  path = tmp_path / "photo.jpg"
  if content == "truncated":
    ok, buf = cv2.imencode(".jpg", lib.astronaut())
    content = buf.tobytes()[:300]
  path.write_bytes(content)
  with pytest.raises(photo.PhotoError) as e:
    head.prepare(str(path))
  assert "\n" not in str(e.value) and str(path) in str(e.value)


# ------------------------------------------------------------------- audio --

def test_features_match_the_encoder_on_each_frames_window(head):
  audio = lib.speech_like(1.3)
  t_total = head.num_frames(audio)
  feats = head.audio_features(audio)
  assert feats.shape == (t_total, 8)
  w = head.window_frames
  # Frame t's own W-frame window, built independently; a chunk's worth of
  # frames so the reference reuses the compiled encoder.
  frames = [0, 7, t_total - 1] + list(range(10, 10 + lib.CHUNK_FRAMES - 3))
  windows = np.stack([features.mfcc_windows(audio, start_frame=t - w // 2,
                                            num_frames=w) for t in frames])
  ref = inference._encode(head.ds2, head.ds2_variables, windows)
  np.testing.assert_allclose(feats[frames], ref, atol=1e-5)
  # Any chunking gives the same features.
  part = head.audio_features(audio, start=5, count=20)
  np.testing.assert_allclose(part, feats[5:25], atol=1e-5)


def test_generate_shapes_and_frame_count(head, aligned):
  audio = lib.speech_like(2.03)
  frames = head.generate(aligned, audio, sample_rate=lib.SAMPLE_RATE)
  assert frames.dtype == np.uint8
  assert frames.shape == (51, lib.CROP, lib.CROP, 3)  # 50.75 frames
  assert frames.std(axis=0).mean() > 0.1  # speech moves the face


def test_silent_audio_gives_a_still_face(head, aligned, tmp_path):
  path = lib.write_wav(tmp_path / "silence.wav", np.zeros(16000 * 2, np.float32))
  frames = head.generate(aligned, path)
  assert frames.shape[0] == 50
  # Identical inputs at every frame; batch lanes may round differently by 1.
  assert np.abs(frames.astype(int) - frames[:1]).max() <= 1
  # Every frame is the generator's output for the silence features: the
  # condition adaptation fits to the photo, whose mouth is closed.
  face = photo.face_to_float(aligned.face[None])
  feats = np.repeat(head.silence_features()[None], lib.CHUNK_FRAMES, axis=0)
  still = np.asarray(inference._render(head.generator,
                                       head.generator_variables, face, feats))
  assert np.abs(frames.astype(int) - still[:1]).max() <= 1


def test_stereo_and_odd_sample_rates_are_valid(head, aligned, tmp_path):
  mono = head.generate(aligned, lib.write_wav(tmp_path / "m.wav",
                                              lib.speech_like(1.0)))
  for rate in (44100, 11025, 22222):
    stereo = lib.speech_like(1.0, rate, channels=2)
    path = lib.write_wav(tmp_path / f"s{rate}.wav", stereo, rate)
    frames = head.generate(aligned, path)
    assert frames.shape == mono.shape
    from_array = head.generate(aligned, stereo, sample_rate=rate)
    np.testing.assert_array_equal(frames.shape, from_array.shape)


@pytest.mark.parametrize("case", ["empty_file", "garbage", "no_audio_stream",
                                  "zero_samples", "missing"])
def test_bad_audio_is_one_line_error(head, aligned, tmp_path, case):
  path = tmp_path / f"{case}.wav"
  if case == "empty_file":
    path.write_bytes(b"")
  elif case == "garbage":
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
  elif case == "no_audio_stream":
    path = tmp_path / "silent_video.mp4"
    video.write_video(path, np.zeros((10, 32, 32, 3), np.uint8), 25.0)
  elif case == "zero_samples":
    lib.write_wav(path, np.zeros(0, np.float32))
  with pytest.raises(audio_io.AudioError) as e:
    head.generate(aligned, str(path))
  assert "\n" not in str(e.value)


def test_stream_is_chunked_and_matches_generate(head, aligned):
  audio = lib.speech_like(1.5)
  chunks = list(head.stream(aligned, audio, sample_rate=lib.SAMPLE_RATE))
  assert [len(c) for c in chunks] == [16, 16, 6]  # 37.5 -> 38 frames
  whole = head.generate(aligned, audio, sample_rate=lib.SAMPLE_RATE)
  np.testing.assert_array_equal(np.concatenate(chunks), whole)
  # Photo outputs: the same frames, composited chunk by chunk.
  still = head.still_face(aligned)
  for output in ("photo", "photo_whole_face"):
    pasted = head.generate(aligned, audio, sample_rate=lib.SAMPLE_RATE,
                           output=output)
    assert pasted.shape == (len(whole),) + aligned.image.shape
    np.testing.assert_array_equal(pasted,
                                  head.compositor(aligned, output)(whole))
  assert still.shape == (lib.CROP, lib.CROP, 3)
  shorthand = head.generate(aligned, audio, sample_rate=lib.SAMPLE_RATE,
                            paste_back=True)
  np.testing.assert_array_equal(shorthand,
                                head.compositor(aligned, "photo")(whole))
  with pytest.raises(ValueError, match="output='mp4'"):
    head.generate(aligned, audio, sample_rate=lib.SAMPLE_RATE, output="mp4")


def test_silence_composited_onto_the_photo_is_the_photo(head, aligned):
  """output='photo': a still face changes no pixel of the photo."""
  frames = head.generate(aligned, np.zeros(16000, np.float32),
                         sample_rate=lib.SAMPLE_RATE, output="photo")
  assert frames.shape == (25,) + aligned.image.shape
  for frame in frames:
    np.testing.assert_array_equal(frame, aligned.image)


# -------------------------------------------------------------- adaptation --
# TalkingHead.adapt on the real (SPADE) generator is tested with the CLI in
# test_generate_cli.py, so the suite compiles its adaptation step once.


class _ToyGenerator(nn.Module):
  """SPADE-like in miniature (conv, instance norm, audio bias); compiles fast."""

  @nn.compact
  def __call__(self, reference, audio_features):
    x = nn.Conv(8, (3, 3))(reference)
    x = layers.instance_norm(x) + nn.Dense(8)(audio_features)[:, None, None]
    return jnp.tanh(nn.Conv(3, (3, 3))(nn.relu(x)) + reference)


def test_batched_adaptation_equals_per_identity_runs(aligned):
  """vmap and lax.map over identities give each photo its solo result."""
  toy = _ToyGenerator()
  faces = photo.face_to_float(np.stack([aligned.face, 255 - aligned.face]))
  audio = np.linspace(-1, 1, 5).astype(np.float32)
  variables = toy.init(jax.random.PRNGKey(0), faces[:1], audio[None])
  pcfg = vgg.default_config()
  pcfg.update(lib.PERCEPTUAL)
  net, net_vars = vgg.load_perceptual_network(pcfg)
  adapters = {b: adaptation.Adapter(toy, net, net_vars, pcfg.layer_weights,
                                    1e-2, batching=b) for b in ("vmap", "map")}
  alone = [adapters["vmap"].adapt(variables, faces[i:i + 1], audio, 3)
           for i in range(2)]
  # One compile per shape: the second identity's run reuses the first's.
  assert alone[0][1].compile_s > 0 and alone[1][1].compile_s == 0.0
  assert len(alone[1][1].epoch_s) == 3
  for batching, adapter in adapters.items():
    together, stats = adapter.adapt(variables, faces, audio, epochs=3)
    assert stats.num_identities == 2 and stats.losses.shape == (3, 2)
    assert stats.losses[-1].mean() < stats.losses[0].mean()
    for i in range(2):
      np.testing.assert_allclose(stats.losses[:, i], alone[i][1].losses[:, 0],
                                 rtol=1e-4, err_msg=batching)
      # Adam normalises each gradient, so a parameter whose gradient is ~0
      # follows float noise; compare what the adapted generators make.
      a = toy.apply(together[i], faces[i:i + 1], audio[None])
      b = toy.apply(alone[i][0][0], faces[i:i + 1], audio[None])
      np.testing.assert_allclose(a, b, atol=2e-3, err_msg=batching)
    # Each identity got its own parameters.
    assert not np.allclose(together[0]["params"]["Conv_0"]["kernel"],
                           together[1]["params"]["Conv_0"]["kernel"])
