"""One file -> one document's text and title: plain text, Markdown, reStructuredText, HTML
(the visible text, via ``html-text``) and PDF (the text layer page by page, via ``pypdf``).

HTML and PDF need the ``files`` extra (``pip install "minilm-qdrant[files]"``); a missing
library is named in one line. A file that cannot give text (binary, not UTF-8, encrypted, a PDF
without a text layer) raises `InputError` saying why; the caller names the file.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from minilm_qdrant.errors import InputError, MissingDependency
from minilm_qdrant.errors import require as require_extra

TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown", ".rst")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
FILE_SUFFIXES = (*TEXT_SUFFIXES, *HTML_SUFFIXES, *PDF_SUFFIXES)
"""Suffixes read as one document a file (a folder's other files are passed over, counted)."""
PAGE_BREAK = "\n\n"
"""What joins a PDF's pages in the stored text."""

_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.M)
_SETEXT = re.compile(r"^(?P<title>[^\n]*\S[^\n]*)\n {0,3}(?:=+|-+)[ \t]*$", re.M)
_RST = re.compile(r"^(?P<title>\S[^\n]*)\n([=\-~^\"'`#*+:.])\2{2,}[ \t]*$", re.M)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)


@dataclass(frozen=True)
class FileText:
    """What a file holds: its text, its title when it has one, and for a PDF the character
    offset in ``text`` where each page begins (page ``i + 1`` begins at ``pages[i]``)."""

    text: str
    title: str | None = None
    pages: list[int] | None = None


def extract(path: Path, data: bytes) -> FileText:
    """The text of ``data``, read as the format ``path``'s suffix names."""
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return _pdf(data)
    text = _decode(data)
    if suffix in HTML_SUFFIXES:
        return _html(text)
    if suffix in (".md", ".markdown"):
        return FileText(text, _markdown_title(text))
    if suffix == ".rst":
        match = _RST.search(text)
        return FileText(text, match.group("title").strip() if match else None)
    return FileText(text)


def require(suffixes: set[str]) -> None:
    """Fail at once, naming the extra, where files of these suffixes need a library that is
    missing (before a long run gets to its first PDF)."""
    for names, module, library in ((HTML_SUFFIXES, "html_text", "html-text"),
                                   (PDF_SUFFIXES, "pypdf", "pypdf")):
        if suffixes & set(names):
            require_extra(module, message=f"reading {names[0]} files needs {library}: pip "
                          "install \"minilm-qdrant[files]\" (or leave them out with --exclude)")


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _decode(data: bytes) -> str:
    for bom, codec in _BOMS:  # Windows tools save "Unicode" text as UTF-16 with a BOM
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise InputError(f"not {codec.upper()} text although it begins with its byte "
                                 f"order mark (invalid at offset {exc.start})") from None
    head = data[:8192]
    if b"\0" in head:
        odd, even = head[1::2].count(0), head[0::2].count(0)
        if len(head) >= 8 and max(odd, even) >= 0.9 * (len(head) // 2) and min(odd, even) == 0:
            raise InputError("UTF-16 text without a byte order mark; save it as UTF-8 (or "
                             "as UTF-16 with its BOM)")
        raise InputError("a binary file, not text (it holds NUL bytes)")
    try:
        return data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (invalid byte at offset {exc.start}); save it as "
                         "UTF-8") from None


def _markdown_title(text: str) -> str | None:
    if text.startswith("---\n"):  # YAML front matter: its title wins
        end = text.find("\n---", 4)
        match = _FRONT_MATTER_TITLE.search(text, 4, end if end > 0 else len(text))
        if match:
            return match.group(1).strip("\"'") or None
    found = [m for m in (_ATX.search(text), _SETEXT.search(text)) if m]
    if not found:
        return None
    first = min(found, key=lambda m: m.start())
    return (first.group(1) if first.re is _ATX else first.group("title")).strip() or None


def _html(text: str) -> FileText:
    try:
        import html_text
    except ImportError:
        raise MissingDependency("reading HTML needs html-text: pip install "
                                "\"minilm-qdrant[files]\"") from None
    try:
        tree = html_text.parse_html(text)
    except Exception as exc:  # noqa: BLE001  (lxml's errors for a page it cannot parse)
        raise InputError(f"not readable HTML ({exc})") from None
    title = tree.findtext(".//title")
    return FileText(html_text.extract_text(tree), title.strip() if title and title.strip()
                    else None)


def _pdf(data: bytes) -> FileText:
    try:
        import pypdf
        from pypdf.errors import DependencyError, PdfReadError
    except ImportError:
        raise MissingDependency("reading PDF needs pypdf: pip install "
                                "\"minilm-qdrant[files]\"") from None
    log = logging.getLogger("pypdf")  # pypdf logs what it repairs (a broken xref, a wrong
    level = log.level  # offset) as warnings: not the user's to read; its errors still raise
    log.setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError("an encrypted PDF (it needs a password); decrypt it first")
        texts = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except DependencyError as exc:
        raise InputError(f"an encrypted PDF this machine cannot open ({exc})") from None
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    finally:
        log.setLevel(level)
    if not any(t.strip() for t in texts):
        raise InputError(f"a PDF without a text layer ({len(texts)} pages, no text: scanned? "
                         "OCR it first)")
    pages, at = [], 0
    for text in texts:
        pages.append(at)
        at += len(text) + len(PAGE_BREAK)
    return FileText(PAGE_BREAK.join(texts), title.strip() if isinstance(title, str)
                    and title.strip() else None, pages)
