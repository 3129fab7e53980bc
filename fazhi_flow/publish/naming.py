"""The report's full title as the public and file names show it: the region, then the title, without
saying the region twice when the title already names it ("益阳市赫山区2024年…", not
"益阳市赫山区益阳市赫山区2024年…")."""
from __future__ import annotations

# Characters that end the name of one administrative level (省, 市, 区, 县, 自治州, 盟, 旗).
LEVEL_ENDS = "省市区县州盟旗"


def full_title(region: str | None, title: str | None) -> str:
    region, title = (region or "").strip(), (title or "").strip()
    if not region or region in title:
        return title
    # The title names only the lower levels ("赫山区2024年…" in 益阳市赫山区): add the missing upper ones.
    for i in range(1, len(region)):
        if region[i - 1] in LEVEL_ENDS and title.startswith(region[i:]):
            return region[:i] + title
    return region + title
