"""The stage bars of a2v_jax.progress on terminals that do and do not say
their size."""
import fcntl
import os
import select
import struct
import sys
import termios

from a2v_jax import progress


def _bar_output(monkeypatch, columns: int) -> str:
  master, slave = os.openpty()
  if columns:
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 30, columns, 0, 0))
  with os.fdopen(slave, 'w') as tty:
    monkeypatch.setattr(sys, 'stderr', tty)
    bar = progress.stage_bar('GAN', 4)
    for _ in range(4):
      bar.update(1)
    bar.close()
    tty.flush()
  # One read of a pty returns what one write put there (the first frame of
  # the bar on some kernels): read until nothing more is waiting.
  chunks = []
  while select.select([master], [], [], 0.5)[0]:
    try:
      chunk = os.read(master, 65536)
    except OSError:  # EIO: the slave end is closed and drained
      break
    if not chunk:
      break
    chunks.append(chunk)
  os.close(master)
  return b''.join(chunks).decode('utf-8', 'replace')


def test_a_bar_is_drawn_on_a_sized_terminal(monkeypatch):
  out = _bar_output(monkeypatch, 120)
  assert 'GAN' in out and '4/4' in out


def test_a_terminal_of_zero_columns_still_gets_a_bar(monkeypatch):
  """A pty made by `script` or a CI runner can report 0x0; a dynamic-width
  bar would draw nothing there."""
  out = _bar_output(monkeypatch, 0)
  assert 'GAN' in out and '4/4' in out


def test_no_bar_off_a_terminal(monkeypatch, tmp_path):
  with open(tmp_path / 'log', 'w') as f:
    monkeypatch.setattr(sys, 'stderr', f)
    assert not progress.interactive()
    bar = progress.stage_bar('GAN', 2)
    bar.update(2)
    bar.close()
  assert (tmp_path / 'log').read_text() == ''
