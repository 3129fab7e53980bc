"""Time and peak memory of the Word import (.docx → draft text).

Four cases: a normal 60-paragraph report, a 94 MB "bomb" (a small .docx whose XML is millions of
empty runs), three bombs imported at once in threads (as three workers' requests would) and a
"nesting bomb" (one paragraph of two million elements nested in one another, ~14 MB of XML).

    python benchmarks/word_import.py [--paragraphs 60] [--bomb-mb 94] [--nesting-levels 2000000]
"""
from __future__ import annotations

import argparse
import io
import resource
import sys
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARAGRAPH = ("全区坚持以习近平新时代中国特色社会主义思想为指导，深入推进依法行政，"
             "全年办理行政复议案件{n}件，开展法治宣传活动{n}场，行政执法人员培训覆盖率达到100%。")


def normal_report(paragraphs: int) -> bytes:
    import docx

    document = docx.Document()
    for n in range(1, paragraphs + 1):
        if n % 10 == 1:
            document.add_heading(f"第{n // 10 + 1}部分", level=1)
        document.add_paragraph(PARAGRAPH.format(n=n))
    table = document.add_table(rows=5, cols=3)
    for r in range(5):
        for c in range(3):
            table.cell(r, c).text = f"{r}-{c}"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def bomb(megabytes: int) -> bytes:
    runs = b"<w:r><w:t></w:t></w:r>" * 50_000  # ~1 MB, written again and again (keeps this process small)
    return docx_with_paragraph([runs] * -(-megabytes * 1024 * 1024 // len(runs)))


def nesting_bomb(levels: int) -> bytes:
    step = 50_000
    return docx_with_paragraph([b"<a>" * step] * (levels // step) + [b"</a>" * step] * (levels // step))


def docx_with_paragraph(body: list[bytes]) -> bytes:
    """A .docx whose document.xml holds one paragraph made of the ``body`` pieces."""
    import docx

    source = io.BytesIO()
    docx.Document().save(source)
    out = io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED,
                                                               compresslevel=9) as packed:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename != "word/document.xml":
                packed.writestr(item.filename, data)
                continue
            head, _, tail = data.partition(b"<w:body>")
            with packed.open(item.filename, "w", force_zip64=True) as member:
                member.write(head + b"<w:body><w:p>")
                for piece in body:
                    member.write(piece)
                member.write(b"</w:p>" + tail)
    return out.getvalue()


def import_once(data: bytes) -> str:
    from fazhi_flow.errors import DomainError
    from fazhi_flow.figures.docx_import import docx_to_text

    try:
        return f"导入 {len(docx_to_text(data, 'a.docx'))} 字"
    except DomainError as exc:
        return f"拒绝：{exc.message}"


def run(data: bytes, threads: int) -> tuple[float, list[str]]:
    outcomes: list[str] = []
    start = time.perf_counter()
    workers = [threading.Thread(target=lambda: outcomes.append(import_once(data))) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start, outcomes


def measure(label: str, data: bytes, threads: int = 1) -> None:
    """Wall time of a plain run, then the peak of Python allocations in a second, traced run
    (tracemalloc slows Python down several times, so it is not on while timing)."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    elapsed, outcomes = run(data, threads)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    run(data, threads)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{label}: {len(data) / 1024:.0f} KB file, {elapsed:.3f} s, peak Python memory "
          f"{peak / 1024 / 1024:.1f} MB, process max RSS {rss_before:.0f} → {rss_after:.0f} MB — {outcomes[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=60)
    parser.add_argument("--bomb-mb", type=int, default=94)
    parser.add_argument("--nesting-levels", type=int, default=2_000_000)
    args = parser.parse_args()
    report, huge = normal_report(args.paragraphs), bomb(args.bomb_mb)
    with zipfile.ZipFile(io.BytesIO(huge)) as archive:
        unpacked = archive.getinfo("word/document.xml").file_size
    print(f"bomb: {len(huge) / 1024:.0f} KB unpacking to {unpacked / 1024 / 1024:.0f} MB of XML")
    import_once(report)  # load the modules before timing
    measure(f"normal report ({args.paragraphs} paragraphs)", report)
    measure("one bomb", huge)
    measure("three bombs at once (threads)", huge, threads=3)
    nested = nesting_bomb(args.nesting_levels)
    measure(f"nesting bomb ({args.nesting_levels} levels)", nested)


if __name__ == "__main__":
    main()
