"""One term per thing: the words docs/glossary.md lists under 不要用 appear in no page template, no
message builder and no message the web layer or the services show."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "glossary.md"
TEMPLATES = ROOT / "templates"
PACKAGE = ROOT / "fazhi_flow"
# Python modules whose string literals users read: message builders, page and flash texts, labels.
# Left out: the operators' commands (cli.py, ops/: their OK/警告/错误 levels are outside the
# glossary) and figures/literal.py, which lists words as they occur in report text (行政复议驳回).
NOT_USER_TEXT = {PACKAGE / "cli.py", PACKAGE / "figures" / "literal.py"}
PY_SOURCES = [p for p in sorted(PACKAGE.rglob("*.py"))
              if p not in NOT_USER_TEXT and (PACKAGE / "ops") not in p.parents]


def glossary_rows(text: str) -> list[tuple[str, list[str]]]:
    """(term, words not to use) from the glossary table, read by its header's column names."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None if rows else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        row = dict(zip(header, cells))
        words = [w.strip() for w in re.split("[、,，]", row.get("不要用", "")) if w.strip()]
        rows.append((row["术语"], words))
    return rows


def forbidden_words() -> dict[str, str]:
    return {word: term for term, words in glossary_rows(GLOSSARY.read_text("utf-8")) for word in words}


def template_hits(directory: Path, words: dict[str, str]) -> list[str]:
    hits = []
    for path in sorted(directory.rglob("*.html")) + sorted(directory.rglob("*.txt")):
        for no, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            hits += [f"{path.relative_to(directory)}:{no}: “{w}”应为“{words[w]}”" for w in words if w in line]
    return hits


def python_hits(paths: list[Path], words: dict[str, str]) -> list[str]:
    """String literals only (comments and docstrings are for developers)."""
    hits = []
    for path in paths:
        tree = ast.parse(path.read_text("utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                hits += [f"{path.name}:{node.lineno}: “{w}”应为“{words[w]}”" for w in words if w in node.value]
    return hits


def test_glossary_lists_the_words_the_issue_found_mixed():
    words = forbidden_words()
    # The evidence and notice rows: 证明材料/佐证材料/附件 and 提示/警告 were used for the same things.
    assert words["证明材料"] == "附件" and words["佐证材料"] == "附件"
    assert words["警告"] == "提示"
    terms = [term for term, _ in glossary_rows(GLOSSARY.read_text("utf-8"))]
    assert not set(words) & set(terms), "a word may not be both a term and a word not to use"


def test_no_template_uses_a_word_not_to_use():
    assert template_hits(TEMPLATES, forbidden_words()) == []


def test_no_message_or_page_text_uses_a_word_not_to_use():
    assert PACKAGE / "notify" / "messages.py" in PY_SOURCES and len(PY_SOURCES) > 50
    assert python_hits(PY_SOURCES, forbidden_words()) == []


def test_the_check_finds_a_planted_word(tmp_path):
    """The scanners themselves: a template and a message builder using an old word are reported."""
    words = forbidden_words()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "edit.html").write_text('<label for="file">上传佐证材料</label>\n', "utf-8")
    builder = tmp_path / "messages.py"
    builder.write_text('"""Docstrings may say 警告."""\n\ndef head():\n    return f"【警告】{1}项"\n', "utf-8")
    assert template_hits(tmp_path, words) == ["tasks/edit.html:1: “佐证材料”应为“附件”"]
    assert python_hits([builder], words) == ["messages.py:4: “警告”应为“提示”"]


@pytest.mark.parametrize("term", ["附件", "提示", "截止日期", "退回修改（退回）"])
def test_chosen_terms_are_the_ones_in_use(term):
    """The glossary picks the word the pages use: each chosen term appears in some template."""
    word = term.split("（")[0]
    assert any(word in p.read_text("utf-8") for p in TEMPLATES.rglob("*.html"))
