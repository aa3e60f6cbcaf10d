"""Per-frame motion tracks of a synthetic speaker: visemes, blinks, head motion.

`viseme_tracks` turns espeak-ng's timed phonemes into per-frame mouth opening
and width (a phoneme-to-viseme table with coarticulation smoothing);
`blink_track` draws natural blinks; `head_motion` draws a small smooth head
pose. `face_render` turns these tracks into frames. All randomness comes from
numpy Generators the caller seeds.
"""
from __future__ import annotations

import numpy as np


def blink_track(rng: np.random.Generator, num_frames: int, fps: float) -> np.ndarray:
  """Eyelid closure per frame (float32 [T] in 0..1): 3-5 frame blinks every 2-6 s."""
  closure = np.zeros(num_frames, np.float32)
  profiles = {3: (0.6, 1.0, 0.45), 4: (0.5, 1.0, 0.8, 0.3), 5: (0.4, 0.9, 1.0, 0.6, 0.2)}
  time = rng.uniform(0.2, 4.0)
  while True:
    start = int(round(time * fps))
    length = int(rng.integers(3, 6))
    if start >= num_frames:
      break
    for k, value in enumerate(profiles[length]):
      if start + k < num_frames:
        closure[start + k] = value
    time += length / fps + rng.uniform(2.0, 6.0)
  return closure


def head_motion(rng: np.random.Generator, num_frames: int, fps: float,
                face_width: float) -> np.ndarray:
  """Slight smooth head motion: float32 [T, 4] (dx px, dy px, degrees, scale)."""
  t = np.arange(num_frames) / fps
  out = np.zeros((num_frames, 4), np.float32)
  amplitude = (0.025 * face_width, 0.02 * face_width, 1.5, 0.012)
  for k, amp in enumerate(amplitude):
    for _ in range(2):
      freq = rng.uniform(0.12, 0.6)
      phase = rng.uniform(0, 2 * np.pi)
      out[:, k] += 0.5 * amp * rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * freq * t + phase)
  out[:, 3] += 1.0
  return out


# Viseme targets (jaw opening 0..1, width -1 rounded .. 1 spread) for espeak-ng
# English phoneme mnemonics. Diphthongs glide from a first to a second target.
_VISEMES = {
    "p": (0.0, 0.0), "b": (0.0, 0.0), "m": (0.0, 0.0),
    "f": (0.08, 0.05), "v": (0.08, 0.05),
    "T": (0.2, 0.1), "D": (0.2, 0.1),
    "t": (0.22, 0.1), "d": (0.22, 0.1), "n": (0.22, 0.1), "l": (0.25, 0.05),
    "s": (0.15, 0.3), "z": (0.15, 0.3),
    "S": (0.2, -0.45), "Z": (0.2, -0.45), "tS": (0.2, -0.45), "dZ": (0.2, -0.45),
    "k": (0.3, 0.0), "g": (0.3, 0.0), "N": (0.3, 0.0), "h": (0.35, 0.0),
    "r": (0.2, -0.45), "w": (0.08, -0.9), "j": (0.2, 0.3),
    "a": (0.9, 0.15), "A:": (0.9, 0.1), "A@": (0.85, 0.0), "aa": (0.9, 0.15),
    "V": (0.65, 0.05), "@": (0.4, 0.0), "3": (0.45, -0.1), "3:": (0.45, -0.1),
    "E": (0.6, 0.2), "e": (0.6, 0.2), "I": (0.35, 0.45), "i": (0.35, 0.45),
    "i:": (0.3, 0.6), "0": (0.75, -0.3), "O": (0.6, -0.6), "O:": (0.6, -0.6),
    "O@": (0.6, -0.5), "U": (0.3, -0.6), "u:": (0.25, -0.85),
    "aI": ((0.9, 0.15), (0.35, 0.4)), "aU": ((0.9, 0.1), (0.3, -0.7)),
    "eI": ((0.55, 0.2), (0.35, 0.45)), "oU": ((0.55, -0.5), (0.3, -0.8)),
    "@U": ((0.5, -0.4), (0.3, -0.8)), "OI": ((0.6, -0.6), (0.35, 0.4)),
    "I@": ((0.35, 0.4), (0.4, 0.0)), "e@": ((0.6, 0.2), (0.4, 0.0)),
    "U@": ((0.3, -0.6), (0.4, 0.0)), "i@": ((0.35, 0.4), (0.4, 0.0)),
}
_BILABIALS = ("p", "b", "m")
_RATE_HZ = 200.0


def viseme_of(phoneme: str):
  """((open, width), (open, width)) targets of an espeak phoneme (first, second half)."""
  name = phoneme
  while name and name not in _VISEMES and name[-1] in "#-;2345_!|":
    name = name[:-1]
  if name.startswith("_") or not name:
    target = (0.0, 0.0)
  elif name in _VISEMES:
    target = _VISEMES[name]
  elif any(c in "aeiouAEIOUV@03" for c in name):
    target = (0.5, 0.0)
  else:
    target = (0.22, 0.05)
  if isinstance(target[0], tuple):
    return target
  return target, target


def _gaussian_smooth(x, sigma_s):
  sigma = sigma_s * _RATE_HZ
  radius = int(3 * sigma) + 1
  k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  k /= k.sum()
  padded = np.pad(x, radius, mode="edge")
  return np.convolve(padded, k, mode="valid")


def viseme_tracks(phonemes, num_frames: int, fps: float, gain: float = 1.0):
  """Mouth opening and width per frame from timed phonemes.

  Targets come from a phoneme-to-viseme table; Gaussian smoothing (30-40 ms)
  blends neighbours (coarticulation) and p/b/m still close the lips fully.

  Args:
    phonemes: list of (start_s, end_s, espeak phoneme).
    num_frames: T.
    fps: frames per second; frame t shows time t / fps.
    gain: articulation strength (Lombard speech > 1).

  Returns:
    (mouth_open float32 [T] in 0..1, mouth_width float32 [T] in -1..1).
  """
  n = int(np.ceil(num_frames / fps * _RATE_HZ)) + 1
  open_t = np.zeros(n)
  width_t = np.zeros(n)
  closure = np.zeros(n)
  for start, end, name in phonemes:
    a = int(round(start * _RATE_HZ))
    b = max(int(round(end * _RATE_HZ)), a + 1)
    mid = (a + b) // 2 if b - a > 1 else b
    first, second = viseme_of(name)
    open_t[a:mid], width_t[a:mid] = first
    open_t[mid:b], width_t[mid:b] = second
    if name in _BILABIALS:
      pad = max((b - a) // 5, 0)
      closure[a + pad:max(b - pad, a + pad + 1)] = 1.0
  open_s = _gaussian_smooth(open_t, 0.03)
  width_s = _gaussian_smooth(width_t, 0.04)
  closure_s = np.clip(_gaussian_smooth(closure, 0.012) * 1.6, 0.0, 1.0)
  open_s = np.clip(open_s * gain, 0.0, 1.0) * (1.0 - closure_s)
  width_s = np.clip(width_s * gain, -1.0, 1.0)
  index = np.minimum(np.round(np.arange(num_frames) / fps * _RATE_HZ).astype(int), n - 1)
  return open_s[index].astype(np.float32), width_s[index].astype(np.float32)
