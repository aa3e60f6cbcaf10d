"""Every relative link in README.md and docs/*.md names a file that exists,
and every #anchor a heading of the page it points to."""

import pathlib
import re

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_PAGES = [_ROOT / "README.md", *sorted((_ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE = re.compile(r"```.*?```", re.DOTALL)


def _anchors(page: pathlib.Path) -> set[str]:
  """GitHub's ids of a page's headings: lower case, punctuation dropped,
  spaces as hyphens."""
  text = _CODE.sub("", page.read_text(encoding="utf-8"))
  headings = re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE)
  return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
          for h in headings}


@pytest.mark.parametrize("page", _PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
  text = _CODE.sub("", page.read_text(encoding="utf-8"))
  broken = []
  for target in _LINK.findall(text):
    if re.match(r"[a-z]+:", target):  # https:, mailto:
      continue
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    if not dest.exists():
      broken.append(f"{target} (no such file)")
    elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
      broken.append(f"{target} (no such heading)")
  assert not broken, f"{page.name}: broken links: {broken}"
