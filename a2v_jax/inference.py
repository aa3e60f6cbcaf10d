"""One-shot inference: one photo + any audio -> talking-head frames at 25 fps.

  head = TalkingHead.from_export("exports/demo")
  frames = head.generate("photo.jpg", "speech.wav", adapt_epochs=5)   # uint8 [T, H, W, 3]

Steps (paper §3.1 and §5):
  1. `prepare`: detect the largest face and align it exactly as the dataset
     does (a2v_jax.photo / a2v_jax.face).
  2. `adapt` (optional): a few epochs of perceptual-loss fine-tuning of the
     generator on the photo (a2v_jax.adaptation documents the objective);
     `adapt_many` adapts several photos as one vmapped computation.
  3. `stream` / `generate`: one frame per 1/fps s of audio, made in fixed-size
     chunks so memory stays flat for audio of any length; the aligned crops
     (output='face'), or what the generator changed composited onto the
     photo at its own resolution (output='photo', a2v_jax.compositing).

Audio features, chunked. The encoder (DeepSpeech2-style: convs + BiGRU) was
trained on windows of W = `ds2_window_frames` consecutive frames (with
normalize_input='window', also normalised over each window; the default
uses fixed statistics). To give every frame the context it had in training,
frame t's feature vector is the encoder's output at the centre of the
W-frame window [t - W//2, t - W//2 + W), audio zero-padded past both ends:
overlapping windows with a margin of W//2 frames each side, of which the
centre is kept. A chunk of C frames needs the MFCC windows of C + W - 1
frames; the encoder then runs on C windows at once and
the generator on the same C frames, both with fixed shapes (compiled once).
Silence gives identical windows everywhere, hence identical frames: a still
face.
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import gc
import os
from typing import Any, Iterator, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import soxr
import tqdm

from a2v_jax import adaptation
from a2v_jax import compositing
from a2v_jax import export as export_lib
from a2v_jax import networks
from a2v_jax import photo as photo_lib
from a2v_jax.audio import features as features_lib
from a2v_jax.audio import io as audio_io
from a2v_jax.face import landmarks as landmarks_lib
from a2v_jax.models import vgg

DEFAULT_CHUNK_FRAMES = 32
# What `stream` yields: the aligned crops, or whole-photo frames (see
# a2v_jax.compositing).
OUTPUTS = ("face", "photo", "photo_whole_face")

AudioInput = str | os.PathLike | np.ndarray
ImageInput = str | os.PathLike | bytes | np.ndarray | photo_lib.AlignedPhoto


@functools.partial(jax.jit, static_argnums=0)
def _encode(ds2, ds2_variables, windows):
  """windows [C, W, S, F] -> the features at each window's centre [C, D]."""
  return networks.centre_features(ds2, ds2_variables, windows)


@functools.partial(jax.jit, static_argnums=0)
def _render(generator, generator_variables, face, feats):
  """face [1, H, W, 3] in [-1, 1], feats [C, D] -> uint8 frames [C, H, W, 3]."""
  frames = networks.render_frames(generator, generator_variables, face,
                                  feats[None])[0][0]
  return jnp.clip(jnp.round((frames + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


@functools.lru_cache(maxsize=1)
def _shared_detector() -> landmarks_lib.LandmarkDetector:
  """The process's LandmarkDetector (dlib's models load once)."""
  return landmarks_lib.LandmarkDetector()


@dataclasses.dataclass(frozen=True)
class Identity:
  """A prepared (and possibly adapted) photo, ready to animate.

  Attributes:
    aligned: the AlignedPhoto.
    generator_variables: the generator's variables for this face (the
      export's, or adapted ones).
    adapt_stats: AdaptStats of the adaptation, None when not adapted.
  """
  aligned: photo_lib.AlignedPhoto
  generator_variables: Any
  adapt_stats: adaptation.AdaptStats | None = None


class TalkingHead:
  """The inference model of an export.

  Args:
    exported: a loaded `export.Export`.
    chunk_frames: frames per fixed-size chunk (encoder and generator batch).
    perceptual_config: the VGG config for adaptation; default the training
      config's `model.perceptual` over `vgg.default_config()`.
    detector: a LandmarkDetector to use; by default one per process, shared
      by every TalkingHead (loading dlib's models takes seconds).
    adapt_batching: how `adapt_many` shares its computation among identities:
      'vmap', 'map' or 'auto' (see a2v_jax.adaptation).
  """

  def __init__(self, exported: export_lib.Export, *,
               chunk_frames: int = DEFAULT_CHUNK_FRAMES,
               perceptual_config: ml_collections.ConfigDict | dict | None = None,
               detector: landmarks_lib.LandmarkDetector | None = None,
               adapt_batching: str = "auto"):
    if chunk_frames < 1:
      raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    self.exported = exported
    prep = exported.preprocessing
    self.crop = int(prep["crop"])
    self.fps = float(prep["fps"])
    self.sample_rate = int(prep["sample_rate"])
    self.window_frames = int(prep["ds2_window_frames"])
    self.chunk_frames = int(chunk_frames)
    self.generator = export_lib.create_generator(exported.generator_config)
    self.ds2 = export_lib.create_ds2(exported.ds2_config)
    self.generator_variables = jax.device_put(exported.generator_variables)
    self.ds2_variables = jax.device_put(exported.ds2_variables)
    self._perceptual_config = perceptual_config
    self._detector = detector
    if adapt_batching not in adaptation.BATCHING:
      raise ValueError(f"adapt_batching={adapt_batching!r}; use one of "
                       f"{adaptation.BATCHING}")
    self.adapt_batching = adapt_batching
    self._perceptual = None
    self._silence = None

  @classmethod
  def from_export(cls, export_dir: str | os.PathLike, **kwargs) -> "TalkingHead":
    """Loads `export_dir` (see a2v_jax.export); kwargs go to __init__."""
    return cls(export_lib.load_export(export_dir), **kwargs)

  @classmethod
  def pretrained(cls, name: str = "grid_s1", **kwargs) -> "TalkingHead":
    """The model shipped in the package (a2v_jax/pretrained): by default the
    one trained on real GRID speech and faces; kwargs go to __init__."""
    from a2v_jax import pretrained as pretrained_lib  # pylint: disable=g-import-not-at-top
    return cls.from_export(pretrained_lib.model_dir(name), **kwargs)

  # ---------------------------------------------------------------- photo --

  @property
  def detector(self) -> landmarks_lib.LandmarkDetector:
    if self._detector is None:
      self._detector = _shared_detector()
    return self._detector

  def prepare(self, image: ImageInput) -> photo_lib.AlignedPhoto:
    """Finds the largest face and aligns it at the export's crop.

    Args:
      image: path, encoded bytes, uint8 [H, W, 3] array, or an AlignedPhoto
        (returned as is).

    Raises:
      photo.PhotoError: corrupt image, smaller than the crop, no face.
    """
    if isinstance(image, photo_lib.AlignedPhoto):
      if image.crop != self.crop:
        raise photo_lib.PhotoError(
            f"photo was aligned at {image.crop} px but the model needs "
            f"{self.crop} px; prepare it with this model")
      return image
    return photo_lib.prepare_photo(image, self.crop, self.detector,
                                   self.exported.preprocessing["template"])

  def identity(self, image: ImageInput | Identity) -> Identity:
    """An unadapted Identity for a photo (or the Identity itself)."""
    if isinstance(image, Identity):
      return image
    return Identity(self.prepare(image), self.generator_variables)

  # ----------------------------------------------------------- adaptation --

  def _adapter(self, learning_rate: float) -> adaptation.Adapter:
    if self._perceptual is None:
      pcfg = vgg.default_config()
      train_model = self.exported.train_config.get("model", {}) or {}
      pcfg.update(dict(self._perceptual_config if self._perceptual_config
                       is not None else train_model.get("perceptual", {})))
      model, variables = vgg.load_perceptual_network(pcfg)
      self._perceptual = (model, jax.device_put(variables),
                          tuple(pcfg.layer_weights))
    model, variables, weights = self._perceptual
    return adaptation.Adapter(self.generator, model, variables, weights,
                              learning_rate, batching=self.adapt_batching)

  def release_adaptation(self) -> None:
    """Frees what adaptation holds here (the VGG of the perceptual loss and
    the buffers of the finished steps) and hands the freed heap back to the
    OS, for a process that only generates from here on; a later `adapt`
    loads the VGG again (its compiled step stays cached)."""
    self._perceptual = None
    gc.collect()
    try:  # glibc keeps freed pages otherwise, and the peak is RSS
      ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
      pass

  def silence_features(self) -> np.ndarray:
    """The encoder's feature vector for silence: float32 [D]."""
    if self._silence is None:
      zeros = np.zeros(self.sample_rate // 5, np.float32)
      self._silence = self.audio_features(zeros, 0, 1)[0]
    return self._silence

  def adapt(self, aligned: ImageInput, epochs: int = adaptation.DEFAULT_EPOCHS,
            learning_rate: float = adaptation.DEFAULT_LEARNING_RATE,
            progress: bool = False) -> Identity:
    """Fine-tunes the generator on one photo (paper §5); see a2v_jax.adaptation.

    Returns:
      Identity with the adapted variables; `adapt_stats` has the compile
      time, the time of each epoch and the loss curve.
    """
    return self.adapt_many([aligned], epochs, learning_rate, progress)[0]

  def adapt_many(self, photos: Sequence[ImageInput],
                 epochs: int = adaptation.DEFAULT_EPOCHS,
                 learning_rate: float = adaptation.DEFAULT_LEARNING_RATE,
                 progress: bool = False) -> list[Identity]:
    """Adapts several photos as one computation vmapped over identities."""
    aligned = [self.prepare(p) for p in photos]
    if not aligned:
      return []
    faces = photo_lib.face_to_float(np.stack([a.face for a in aligned]))
    adapter = self._adapter(learning_rate)
    adapted, stats = adapter.adapt(self.generator_variables, faces,
                                   self.silence_features(), epochs, progress)
    logging.info(
        "Adapted %d photo(s) for %d epochs: compile %.2f s, compute %.2f s "
        "(%.3f s/epoch); perceptual loss %.4f -> %.4f.", len(aligned), epochs,
        stats.compile_s, stats.compute_s, stats.compute_s / max(epochs, 1),
        float(stats.losses[0].mean()), float(stats.losses[-1].mean()))
    return [Identity(a, v, stats) for a, v in zip(aligned, adapted)]

  # ---------------------------------------------------------------- audio --

  def load_audio(self, audio: AudioInput,
                 sample_rate: int | None = None) -> np.ndarray:
    """Audio as float32 [N] mono at the model's rate.

    Args:
      audio: a path (any format ffmpeg reads; stereo and any rate) or an
        array float [N] or [N, C] in [-1, 1] at `sample_rate`.
      sample_rate: the array's rate (required for arrays).

    Raises:
      audio.io.AudioError: unreadable, empty, no audio stream.
    """
    if not isinstance(audio, np.ndarray):
      return audio_io.load_audio(audio, self.sample_rate)
    if not sample_rate:
      raise audio_io.AudioError("audio given as an array without its "
                                "sample_rate; pass sample_rate=")
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 2:
      audio = audio.mean(axis=1)
    if audio.ndim != 1 or audio.size == 0:
      raise audio_io.AudioError(f"audio array has shape {audio.shape}; pass "
                                "[N] or [N, channels] samples with N > 0")
    if not np.all(np.isfinite(audio)):
      raise audio_io.AudioError("audio array contains NaN or Inf samples")
    if int(sample_rate) != self.sample_rate:
      audio = soxr.resample(audio, int(sample_rate), self.sample_rate,
                            quality="HQ").astype(np.float32)
    return np.clip(audio, -1.0, 1.0)

  def num_frames(self, audio: np.ndarray) -> int:
    """Video frames for audio float32 [N] at the model's rate."""
    return features_lib.num_video_frames(len(audio), self.sample_rate,
                                         self.fps)

  def _windows(self, audio: np.ndarray, start: int, count: int) -> np.ndarray:
    """Encoder inputs of frames [start, start + count): [count, W, S, F]."""
    prep = self.exported.preprocessing
    half = self.window_frames // 2
    total = count + self.window_frames - 1
    kwargs = dict(sample_rate=self.sample_rate, fps=self.fps,
                  num_frames=total, window_s=prep["window_s"],
                  start_frame=start - half)
    if prep["audio_features"] == "mfcc":
      windows = features_lib.mfcc_windows(audio, n_mfcc=prep["n_mfcc"],
                                          n_mels=prep["n_mels"], **kwargs)
    else:
      windows = features_lib.log_mel_windows(audio, n_mels=prep["n_mels"],
                                             **kwargs)
    return features_lib.centred_windows(windows, self.window_frames)

  def audio_features(self, audio: np.ndarray, start: int = 0,
                     count: int | None = None) -> np.ndarray:
    """Encoder features of frames [start, start + count): float32 [count, D].

    Runs in fixed chunks of `chunk_frames`, so any count is memory-flat.
    """
    count = self.num_frames(audio) - start if count is None else count
    out = []
    for s in range(start, start + count, self.chunk_frames):
      n = min(self.chunk_frames, start + count - s)
      out.append(np.asarray(self._features_chunk(audio, s))[:n])
    return np.concatenate(out)

  def _features_chunk(self, audio: np.ndarray, start: int) -> jax.Array:
    """Device features of the fixed-size chunk starting at `start`: [C, D]."""
    return _encode(self.ds2, self.ds2_variables,
                   self._windows(audio, start, self.chunk_frames))

  # ----------------------------------------------------------- generation --

  def still_face(self, identity: ImageInput | Identity) -> np.ndarray:
    """The generator's frame for the still reference (silence).

    Returns uint8 [crop, crop, 3]: the zero of the change that
    output='photo' composites. For silence every frame of `stream` is this
    one (up to 1 level of batch rounding).
    """
    identity = self.identity(identity)
    face = jnp.asarray(photo_lib.face_to_float(identity.aligned.face[None]))
    feats = np.repeat(self.silence_features()[None], self.chunk_frames, axis=0)
    return np.asarray(_render(self.generator, identity.generator_variables,
                              face, feats))[0]

  def compositor(self, identity: ImageInput | Identity, output: str):
    """The compositor of an `output` kind for an identity (None for 'face')."""
    identity = self.identity(identity)
    if output not in OUTPUTS:
      raise ValueError(f"output={output!r}; use one of {OUTPUTS}")
    if output == "face":
      return None
    still = self.still_face(identity)
    if output == "photo":
      return compositing.ChangeComposite(identity.aligned, still)
    return compositing.WholeFacePaste(identity.aligned, still)

  def stream(self, image: ImageInput | Identity, audio: AudioInput, *,
             sample_rate: int | None = None, adapt_epochs: int = 0,
             output: str = "face", paste_back: bool = False,
             progress: bool = False) -> Iterator[np.ndarray]:
    """Yields the video's frames chunk by chunk (memory-flat for any length).

    Args:
      image: photo (see `prepare`), AlignedPhoto or Identity.
      audio: path or array (see `load_audio`).
      sample_rate: the rate of an audio array.
      adapt_epochs: > 0 adapts the generator to the photo first (ignored for
        an already adapted Identity).
      output: 'face' (the aligned crops as generated), 'photo' (what the
        generator changed, composited onto the photo at its resolution; see
        a2v_jax.compositing) or 'photo_whole_face' (the generated face
        pasted over the photo's, for models that move the whole head).
      paste_back: True turns output='face' into 'photo' (a shorthand).
      progress: show a tqdm bar over frames.

    Yields:
      uint8 [n, H, W, 3] RGB chunks (crop or photo size), n <= chunk_frames,
      in order; the total is `num_frames(audio)` frames at `fps`. Photo-size
      chunks are split further to stay under
      compositing.MAX_CHUNK_BYTES.
    """
    output = _resolve_output(output, paste_back)
    identity = self.identity(image)
    if adapt_epochs > 0 and identity.adapt_stats is None:
      identity = self.adapt(identity.aligned, adapt_epochs, progress=progress)
    wave = self.load_audio(audio, sample_rate)
    total = self.num_frames(wave)
    face = jnp.asarray(photo_lib.face_to_float(identity.aligned.face[None]))
    compositor = self.compositor(identity, output)
    bar = tqdm.tqdm(total=total, desc="generate", unit="frame",
                    disable=not progress, leave=False)
    pending = None  # (device frames, count): host work overlaps the device.
    for start in range(0, total, self.chunk_frames):
      feats = self._features_chunk(wave, start)
      frames = _render(self.generator, identity.generator_variables, face,
                       feats)
      if pending is not None:
        yield from self._finish(pending, compositor, bar)
      pending = (frames, min(self.chunk_frames, total - start))
    if pending is not None:
      yield from self._finish(pending, compositor, bar)
    bar.close()

  @staticmethod
  def _finish(pending, compositor, bar) -> Iterator[np.ndarray]:
    frames, count = pending
    frames = np.asarray(frames)[:count]
    if compositor is None:
      yield frames
    else:
      yield from compositor.chunks(frames)
    bar.update(count)

  def generate(self, image: ImageInput | Identity, audio: AudioInput, *,
               sample_rate: int | None = None, adapt_epochs: int = 0,
               output: str = "face", paste_back: bool = False,
               progress: bool = False) -> np.ndarray:
    """All frames at once: uint8 [T, H, W, 3] at `fps` (see `stream`).

    For long audio prefer `stream`, which never holds every frame.
    """
    chunks = list(self.stream(image, audio, sample_rate=sample_rate,
                              adapt_epochs=adapt_epochs, output=output,
                              paste_back=paste_back, progress=progress))
    return np.concatenate(chunks)


def _resolve_output(output: str, paste_back: bool) -> str:
  """The output kind of `stream`'s two arguments (paste_back is a shorthand)."""
  if output not in OUTPUTS:
    raise ValueError(f"output={output!r}; use one of {OUTPUTS}")
  return "photo" if paste_back and output == "face" else output
