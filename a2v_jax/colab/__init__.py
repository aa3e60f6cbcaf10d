"""Helpers for the notebooks in notebooks/, which run in Colab and headless.

Every notebook runs in three places: Google Colab (upload buttons, the
microphone, downloads), a local Jupyter, and headless under nbclient in CI.
The Colab-only calls are guarded: outside Colab they log what they would have
done and fall back to a default (the bundled sample photo, the synthesized
sentence), so a notebook runs top to bottom anywhere.

  from a2v_jax import colab
  SMALL = colab.small_mode()            # A2V_NOTEBOOK_SMALL=1: CI-sized run
  colab.describe_accelerator()          # 'gpu: 1 x NVIDIA A100 ...'
  photo = colab.upload_file("a photo", default=sample_photo)
  colab.show_video("out.mp4"); colab.download("out.mp4")

Modules: runtime (Colab or not, SMALL, accelerator, progress lines), media
(upload, microphone, inline video/images, download), models (exports from a
path/archive/URL, the synthetic demo), events (TensorBoard event files read
back without TensorFlow), figures (losses by phase, metric distributions,
real/generated/static frames). Their public names are re-exported here, so
notebook cells read `colab.<name>`.
"""
from a2v_jax.colab.events import decode_png
from a2v_jax.colab.events import Events
from a2v_jax.colab.events import latest_clip
from a2v_jax.colab.events import phase_of_steps
from a2v_jax.colab.events import read_events
from a2v_jax.colab.figures import compare_frames
from a2v_jax.colab.figures import plot_distributions
from a2v_jax.colab.figures import plot_losses_by_phase
from a2v_jax.colab.media import download
from a2v_jax.colab.media import record_audio
from a2v_jax.colab.media import show_images
from a2v_jax.colab.media import show_video
from a2v_jax.colab.media import upload_file
from a2v_jax.colab.media import video_html
from a2v_jax.colab.models import archive_export
from a2v_jax.colab.models import export_random_demo
from a2v_jax.colab.models import fetch_export
from a2v_jax.colab.models import pretrain_helpers
from a2v_jax.colab.models import train_demo
from a2v_jax.colab.runtime import Accelerator
from a2v_jax.colab.runtime import describe_accelerator
from a2v_jax.colab.runtime import detect_accelerator
from a2v_jax.colab.runtime import in_colab
from a2v_jax.colab.runtime import NotebookError
from a2v_jax.colab.runtime import show_progress_logs
from a2v_jax.colab.runtime import small_mode
from a2v_jax.colab.runtime import work_dir
