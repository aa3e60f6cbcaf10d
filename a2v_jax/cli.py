"""What every command shares: one-line errors for bad input, a quiet terminal.

    from a2v_jax import cli
    ...
    if __name__ == '__main__':
      define_flags()
      cli.run(main)

`run` parses the flags itself, so a mistake on the command line (an unknown
or misspelt flag or config key, a bad value, a missing config file, a
missing required flag) ends in one line, `error: ...`, naming the problem and
the fix, with exit status 1 and no traceback. A command's own errors end the
same way: raise `InputError` (or any `SystemExit('error: ...')`).

It imports nothing heavy (absl only), so a command can check its input
before it imports jax, flax or orbax and before any model loads; keep the
entry points' heavy imports inside their `main`.

The terminal: other libraries' INFO logs (orbax's option dumps, jax's probe
for a TPU on a CPU machine) are off; a2v_jax's own INFO lines, and everyone's
warnings and errors, stay. `--log_level=all` (or absl's `--verbosity`) brings
the rest back; `--log_level=warning` keeps only warnings and errors.

Compiled programs: `run` turns on JAX's persistent compilation cache
(`configure_compilation_cache`), so a second run of a command skips the
XLA compiles of the first.
"""

from __future__ import annotations

import difflib
import logging as std_logging
import os
import re
import sys
import threading
import time
from typing import Callable, NoReturn, Sequence

from absl import app
from absl import flags
from absl import logging

LOG_LEVELS = ('warning', 'info', 'all')

flags.DEFINE_enum(
    'log_level', 'info', list(LOG_LEVELS),
    'info: this project\'s progress lines, and warnings and errors from '
    'every library; all: every library\'s INFO logs too (orbax, jax); '
    'warning: warnings and errors only.')

# Folders whose INFO logs are this project's.
_PACKAGE_ROOT = os.path.dirname(os.path.abspath(__file__))
_PROJECT_DIRS = tuple(os.path.join(os.path.dirname(_PACKAGE_ROOT), d) + os.sep
                      for d in ('a2v_jax', 'tfds_builders', 'configs'))


class InputError(ValueError):
  """Bad command-line input; the message names the problem and the fix."""


def fail(message: object) -> NoReturn:
  """Prints `error: <message>` as one line on stderr; exits with status 1."""
  text = ' '.join(str(message).split())
  text = text[len('error: '):] if text.startswith('error: ') else text
  print(f'error: {text}', file=sys.stderr)
  sys.exit(1)


# --- Flags -------------------------------------------------------------------


def _config_flag_names(flag_values: flags.FlagValues) -> list[str]:
  """Names of the ml_collections config-file flags (--config and the like)."""
  flag_dict = flag_values._flags()  # pylint: disable=protected-access
  return [name for name, flag in flag_dict.items()
          if type(flag.parser).__name__ == 'ConfigFileFlagParser']


def _flag_args(argv: Sequence[str]) -> list[tuple[str, str | None]]:
  """(name, value or None) of each `--name[=value]` argument."""
  out = []
  for arg in argv[1:]:
    if arg == '--':
      break
    if arg.startswith('-'):
      name, eq, value = arg.lstrip('-').partition('=')
      out.append((name, value if eq else None))
  return out


def _check_config_files(argv: Sequence[str], flag_values) -> None:
  """A --config path that is not a file fails here, not at first use."""
  names = _config_flag_names(flag_values)
  args = list(argv[1:])
  for i, arg in enumerate(args):
    for name in names:
      value = None
      if arg.startswith(f'--{name}='):
        value = arg.split('=', 1)[1]
      elif arg == f'--{name}' and i + 1 < len(args):
        value = args[i + 1]
      if value is None:
        continue
      path = value.split(':', 1)[0]
      if not os.path.isfile(path):
        hint = ''
        folder = os.path.dirname(path) or '.'
        if os.path.isdir(folder):
          close = difflib.get_close_matches(
              os.path.basename(path), os.listdir(folder), n=1)
          if close:
            guess = os.path.join(os.path.dirname(path), close[0])
            hint = f' (did you mean {guess}?)'
        raise InputError(f'config file {path} does not exist{hint}; pass '
                         f'--{name}=configs/NAME.py[:variant]')


def _missing_key_message(error: BaseException, argv, flag_values) -> str:
  """The line for an override naming a key the config does not have."""
  text = str(error).replace('\\n', '\n').replace("\\'", "'")
  found = re.findall(r"'([^'\n]+)'", text)
  key = found[0] if found else text.strip('"\' ')
  guess = re.search(r'Did you mean "([^"]+)"', text)
  arg = next((f'--{n}' + (f'={v}' if v is not None else '')
              for n, v in _flag_args(argv)
              if '.' in n and key in n.split('.')[1:]), None)
  where = f'{arg}: ' if arg else ''
  if guess and arg:
    fixed = '.'.join(guess.group(1) if part == key else part
                     for part in arg.split('=', 1)[0].split('.'))
    fix = f'did you mean {fixed}?'
  elif guess:
    fix = f'did you mean {guess.group(1)}?'
  else:
    fix = 'the config file and a2v_jax/base_config.py list the keys'
  return f"{where}the config has no key '{key}'; {fix}"


def _flag_error_message(error: BaseException, argv, flag_values) -> str:
  """One line for an absl flags error."""
  text = str(error)
  if isinstance(error, flags.UnrecognizedFlagError):
    name = getattr(error, 'flagname', '') or ''
    guess = re.search(r'Did you mean: ([^?]+)\?', text)
    fix = (f'did you mean --{guess.group(1).strip().split(",")[0].strip()}?'
           if guess else '--helpshort lists the flags')
    return f'unknown flag --{name}; {fix}'
  required = re.search(r'Flag --(\S+) must have a value other than None', text)
  if required:
    return (f'--{required.group(1)} is required; pass '
            f'--{required.group(1)}=...')
  if 'Error whilst parsing config file' in text:
    last = [l for l in text.splitlines() if l.strip()][-1].strip()
    head = text.split(':', 1)[0].replace('flag ', '')
    return (f'{head} cannot be loaded ({last}); check the file and the '
            f'variant after the colon')
  first = text.splitlines()[0] if text else type(error).__name__
  m = re.match(r'flag (--\S+?)=(.*?): (.*)', first)
  if m:
    fix = ('pass one of those' if 'one of' in m.group(3) else
           'pass a value of the type the flag or config key takes')
    return f'bad value {m.group(1)}={m.group(2)} ({m.group(3)}); {fix}'
  return first


def parse_flags(argv: Sequence[str],
                flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
  """flag_values(argv), with every mistake ending in one `error:` line."""
  try:
    _check_config_files(argv, flag_values)
    return flag_values(list(argv))
  except InputError as e:
    fail(e)
  except flags.Error as e:
    fail(_flag_error_message(e, argv, flag_values))
  except (AttributeError, KeyError) as e:  # ml_collections: no such key
    fail(_missing_key_message(e, argv, flag_values))
  except (TypeError, ValueError) as e:  # ml_collections: a value's type
    args = ' '.join(f'--{n}={v}' for n, v in _flag_args(argv)
                    if v is not None and '.' in n)
    fail(f'bad config override {args} ({e}); pass a value of the key\'s '
         'type')


def run(main: Callable[[list[str]], None],
        flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """absl's app.run(main) with one-line errors and the quiet terminal."""

  def wrapped(argv):
    configure_logging(flag_values)
    configure_compilation_cache()
    try:
      main(argv)
    except (app.UsageError, InputError) as e:
      fail(e)
    except SystemExit as e:
      if isinstance(e.code, str):
        fail(e.code)
      raise

  try:
    app.run(wrapped, flags_parser=lambda argv: parse_flags(argv, flag_values))
  except SystemExit as e:
    if e.code not in (0, None) and _busy_daemon_threads():
      _exit_now(e.code)
    raise


def _busy_daemon_threads() -> list[threading.Thread]:
  """Daemon threads still running (e.g. the train step's background
  compile, a2v_jax/train.py)."""
  return [t for t in threading.enumerate()
          if t.daemon and t.is_alive() and t is not threading.main_thread()]


def _exit_now(code) -> NoReturn:
  """Exits at once after an error, skipping interpreter finalisation.

  A daemon thread inside native code (XLA compiling the train step) that
  returns while Python finalises is unwound by the C++ runtime, which
  aborts the process (status 134 and a screen of 'Fatal Python error'
  after the one error line). Everything that must reach disk is closed
  before this point (checkpointers close in `finally` blocks); logs and
  the standard streams are flushed here.
  """
  std_logging.shutdown()
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass
  os._exit(code if isinstance(code, int) else 1)  # pylint: disable=protected-access


# --- Compilation cache -------------------------------------------------------

CACHE_ENV = 'A2V_COMPILATION_CACHE'


def compilation_cache_dir(environ=os.environ) -> str | None:
  """The folder of JAX's persistent compilation cache, or None (off).

  $A2V_COMPILATION_CACHE when set (empty = off), else
  $XDG_CACHE_HOME/a2v_jax/jax, else ~/.cache/a2v_jax/jax.
  """
  if CACHE_ENV in environ:
    return environ[CACHE_ENV] or None
  base = environ.get('XDG_CACHE_HOME') or os.path.join(
      os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'a2v_jax', 'jax')


def configure_compilation_cache(environ=os.environ) -> str | None:
  """Points JAX's persistent compilation cache at compilation_cache_dir().

  Imports nothing: before jax is imported it sets JAX_COMPILATION_CACHE_DIR
  (which jax reads at import); after, it updates jax.config. A
  JAX_COMPILATION_CACHE_DIR already set by the user wins. Returns the folder
  in use, or None when the cache is off.
  """
  path = compilation_cache_dir(environ)
  if path is None:
    return None
  path = environ.setdefault('JAX_COMPILATION_CACHE_DIR', path)
  jax = sys.modules.get('jax')
  if jax is not None and hasattr(jax, 'config'):
    jax.config.update('jax_compilation_cache_dir', path)
  return path


# --- Input checks ------------------------------------------------------------


def _is_remote(path: str) -> bool:
  return '://' in path


def check_writable_dir(path: str | None, flag: str) -> None:
  """Makes folder `path` (if needed) and checks this process can write there.

  Raises:
    InputError naming the flag and the fix.
  """
  if not path:
    raise InputError(f'{flag} is required; pass {flag}=DIR')
  if _is_remote(path):
    return
  if os.path.exists(path) and not os.path.isdir(path):
    raise InputError(f'{flag}={path} is a file, not a folder; pass a new '
                     'folder or an existing one')
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise InputError(f'{flag}={path} cannot be made ({e.strerror}); pass a '
                     'folder you can write to') from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise InputError(f'{flag}={path} is not writable by this user; pass a '
                     'folder you can write to')


def check_dir(path: str | None, flag: str, what: str, fix: str) -> None:
  """`path` is an existing folder; else InputError '<flag>=... (what): fix'."""
  if not path:
    raise InputError(f'{flag} is required ({what}); {fix}')
  if _is_remote(path):
    return
  if not os.path.exists(path):
    raise InputError(f'{flag}={path} does not exist ({what}); {fix}')
  if not os.path.isdir(path):
    raise InputError(f'{flag}={path} is a file, not a folder ({what}); {fix}')


def check_dataset_dir(config) -> None:
  """config.dataset.data_dir of a built dataset (grid, lombard_grid) exists:
  checked before jax loads (the data source says more once it opens)."""
  d = config.dataset
  if (d.name in ('grid', 'lombard_grid') and d.data_dir
      and not _is_remote(d.data_dir) and not os.path.isdir(d.data_dir)):
    raise InputError(
        f'cannot open dataset {d.name}/crop{d.crop} (nothing built at '
        f'{d.data_dir}: no such folder). Build it with `python -m '
        f'a2v_jax.data.build --dataset={d.name} --crop={d.crop} '
        f'--manual_dir=DIR --data_dir=DIR` and set config.dataset.data_dir.')


def check_checkpoint_dirs(config) -> None:
  """config.init_from and the helpers' pretrained.*_ckpt, when set, name
  checkpoint folders (a run's checkpoints/, holding step folders): checked
  before jax loads, not after minutes of compiling."""
  paths = [('init_from', config.get('init_from', ''))]
  pretrained = config.get('pretrained') or {}
  paths += [(f'pretrained.{k}', v) for k, v in sorted(pretrained.items())
            if k.endswith('_ckpt')]
  for key, path in paths:
    if not path or _is_remote(path):
      continue
    if not os.path.isdir(path):
      raise InputError(f'config.{key}={path} does not exist; pass a '
                       "training run's checkpoints/ folder")
    if not any(n.isdigit() and os.path.isdir(os.path.join(path, n))
               for n in os.listdir(path)):
      raise InputError(
          f'config.{key}={path} holds no checkpoint (no step folders); pass '
          "a run's checkpoints/ folder (e.g. runs/NAME/checkpoints), not a "
          'step inside it or the run itself')


# --- The terminal ------------------------------------------------------------


class _ProjectFilter(std_logging.Filter):
  """Keeps warnings and errors, and INFO from this project's files."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.WARNING:
      return True
    return (record.name == 'absl'
            and os.path.abspath(record.pathname).startswith(_PROJECT_DIRS))


class _ShortFormatter(std_logging.Formatter):
  """`13:02:11 message` (INFO), `13:02:11 warning: message` (others)."""

  def format(self, record: std_logging.LogRecord) -> str:
    stamp = time.strftime('%H:%M:%S', time.localtime(record.created))
    level = ('' if record.levelno == std_logging.INFO
             else record.levelname.lower() + ': ')
    text = f'{stamp} {level}{record.getMessage()}'
    if record.exc_info:
      text += '\n' + self.formatException(record.exc_info)
    return text


class _AboveTheBars:
  """A stream for the log handler that prints above the tqdm bars (which
  are redrawn below) instead of through them."""

  def write(self, text: str) -> None:
    import tqdm  # pylint: disable=g-import-not-at-top
    if text.strip():
      tqdm.tqdm.write(text.rstrip('\n'), file=sys.stderr)

  def flush(self) -> None:
    sys.stderr.flush()

  def close(self) -> None:
    pass


_configured = []


def configure_logging(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Applies --log_level to absl's handler (see the module docstring)."""
  level = ('info' if 'log_level' not in flag_values
           else flag_values['log_level'].value)
  if 'verbosity' in flag_values and flag_values['verbosity'].present:
    level = 'all'
  handler = logging.get_absl_handler().python_handler
  for old in _configured:
    handler.removeFilter(old)
  _configured.clear()
  if level == 'all':
    return
  logging.set_verbosity(logging.INFO)
  std_logging.getLogger().setLevel(std_logging.INFO)
  project = _ProjectFilter()
  handler.addFilter(project)
  _configured.append(project)
  handler.setFormatter(_ShortFormatter())
  if sys.stderr.isatty():
    handler.setStream(_AboveTheBars())
  if level == 'warning':
    handler.setLevel(std_logging.WARNING)
