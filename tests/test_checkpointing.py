"""Checkpoint retention: max_to_keep plus the phase ends kept for the
ablation."""
import numpy as np

from a2v_jax import checkpointing
from a2v_jax import train
from configs import synthetic


def test_keep_steps_outlive_max_to_keep(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path), max_to_keep=2,
                                    async_save=False, keep_steps=(2, 4))
  try:
    for step in range(1, 8):
      ckpt.save(step, {'w': np.full([3], step, np.float32)}, {'step': step})
    ckpt.wait_until_finished()
    assert ckpt.all_steps() == [2, 4, 6, 7]
  finally:
    ckpt.close()
  plain = checkpointing.Checkpointer(str(tmp_path / 'plain'), max_to_keep=2,
                                     async_save=False)
  try:
    for step in range(1, 5):
      plain.save(step, {'w': np.zeros([3], np.float32)}, {'step': step})
    plain.wait_until_finished()
    assert plain.all_steps() == [3, 4]
  finally:
    plain.close()


def test_phase_ends_come_from_a_step_schedule():
  c = synthetic.get_config()
  assert train._phase_end_steps(c) == (40, 120)  # pylint: disable=protected-access
  c.curriculum.advance = 'stable'
  assert train._phase_end_steps(c) == ()  # pylint: disable=protected-access
  c.curriculum.advance = 'steps'
  c.ckpt_keep_phase_ends = False
  assert train._phase_end_steps(c) == ()  # pylint: disable=protected-access
