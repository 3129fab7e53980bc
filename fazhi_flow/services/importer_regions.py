"""The region a cycle file is for (``cycle.region``): found, or defined by the file, and who may do that.

``cycle.region`` is either text (a region's code or name, or the name printed in the report title of an
older single-region file) or a mapping ``{code, name, full_name, level, parent}`` that defines the
region; ``parent`` is again text naming an existing region, or a mapping defining it too. A region the
file defines that does not exist is created only by an actor who may manage regions (a system
administrator, or the command line's operator); a region admin imports into their own region only.
Everything here only reads; ``apply_region`` writes what ``resolve_region`` planned.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from .. import policy
from ..extensions import db
from ..limits import column_length
from ..models import ReportCycle
from ..models.org import DEFAULT_REGION_CODE, LEVEL_RANK, REGION_LEVELS, Region

REGION_KEYS = {"code", "name", "full_name", "level", "parent"}
# A province → city → county chain is three deep; anything much deeper is a mistake (or a loop).
MAX_CHAIN = 8


@dataclass
class RegionPlan:
    """Where the file's cycle, units and users go. ``region`` is the existing target (None when the
    file creates it); ``new`` the regions to create, top first; ``renames`` existing regions whose name
    the file changes; ``printed`` the cycle's region name as printed in the report title."""

    region: Region | None = None
    new: list = field(default_factory=list)  # dicts: code, name, level, parent (Region or code of a new one)
    renames: list = field(default_factory=list)  # (Region, new name)
    printed: str = ""

    @property
    def region_id(self) -> int | None:
        return self.region.id if self.region is not None else None

    @property
    def label(self) -> str:
        if self.region is not None:
            return f"{self.region.name}（{self.region.code}）"
        return f"{self.new[-1]['name']}（{self.new[-1]['code']}）" if self.new else ""


def may_manage_regions(actor) -> bool:
    """The command line without a user acts as the operator; on the web a system administrator."""
    return actor is None or policy.can(actor, "region.manage")


def _find(value: str) -> Region | None:
    """A region by code (any case), else by name when exactly one region has it."""
    from .regions import find_region

    region = find_region(value)
    if region is not None:
        return region
    named = list(db.session.scalars(select(Region).where(Region.name == value).limit(2)))
    return named[0] if len(named) == 1 else None


def _by_printed_name(value: str) -> Region | None:
    """The one region whose cycles print ``value`` as their region (an older file re-imported)."""
    ids = list(db.session.scalars(select(ReportCycle.region_id).where(ReportCycle.region == value).distinct()))
    return db.session.get(Region, ids[0]) if len(ids) == 1 else None


class _Resolver:
    def __init__(self, c, actor, fixed: Region | None):
        self.c, self.actor, self.fixed = c, actor, fixed
        self.manages = may_manage_regions(actor)
        self.plan = RegionPlan()

    # -------------------------------------------------------------- text

    def text(self, raw, path: str) -> None:
        value = self.c.text(raw, path, required=True, max_len=column_length(ReportCycle.region))
        if not value:
            return
        found = _find(value) or _by_printed_name(value)
        self.plan.printed = found.name if found is not None and found.code.lower() == value.lower() else value
        if found is None:
            found = self._fallback(value, path)
        self.plan.region = found

    def _fallback(self, value: str, path: str) -> Region | None:
        """Text naming no region: the region the caller fixed, the actor's own, or the only one there
        is (an installation of one region, as before regions existed)."""
        if self.fixed is not None:
            return self.fixed
        if self.actor is not None:
            return self.actor.region
        regions = list(db.session.scalars(select(Region).limit(2)))
        if len(regions) == 1:
            return regions[0]
        if not regions:  # the first file of an empty installation names its region
            self.plan.new.append({"code": DEFAULT_REGION_CODE, "name": value[:column_length(Region.name)],
                                  "level": "county", "parent": None, "path": path})
            return None
        self.c.err(path, f"系统中有多个地区，没有代码或名称为“{value}”的地区：请写地区代码（如 430903），"
                         "或在命令行用 --region 指定地区")
        return None

    # -------------------------------------------------------------- mapping

    def mapping(self, raw: dict, path: str) -> None:
        chain = self._chain(raw, path)
        if chain is None:
            return
        for depth, node in enumerate(chain):
            above = chain[depth + 1] if depth + 1 < len(chain) else None
            self._node(node, above)
        top = chain[0]
        self.plan.printed = top["full_name"] or top["name"] or ""
        if top["existing"] is not None:
            self.plan.region = top["existing"]

    def _chain(self, raw: dict, path: str) -> list[dict] | None:
        """The region and the parents the file defines, this region first; a loop is refused."""
        chain: list[dict] = []
        while isinstance(raw, dict):
            node = self._read(raw, path)
            codes = [n["code"] for n in chain]
            if node["code"] and node["code"] in codes:
                loop = " → ".join(codes[codes.index(node["code"]):] + [node["code"]])
                self.c.err(f"{path}.code", f"地区的上级关系形成了循环：{loop}")
                return None
            chain.append(node)
            if len(chain) > MAX_CHAIN:
                self.c.err(path, f"上级地区超过{MAX_CHAIN}层")
                return None
            raw, path = raw.get("parent"), f"{path}.parent"
        if raw is not None:  # the top of the chain names an existing region
            parent_text = self.c.text(raw, path, max_len=column_length(Region.code))
            parent = _find(parent_text) if parent_text else None
            if parent_text and parent is None:
                self.c.err(path, f"找不到上级地区“{parent_text}”（请写地区代码）")
            chain[-1]["parent_region"] = parent
        return chain

    def _read(self, raw: dict, path: str) -> dict:
        from .regions import REGION_CODE_RE

        c = self.c
        c.mapping(raw, path, REGION_KEYS, required=("code",))
        code = c.text(raw.get("code"), f"{path}.code", True, column_length(Region.code))
        if code and not REGION_CODE_RE.match(code):
            c.err(f"{path}.code", f"地区代码“{code}”应为2至20个字母、数字、下划线或短横线（建议用GB/T 2260六位行政区划代码）")
            code = None
        level = raw.get("level")
        if level is not None and level not in REGION_LEVELS:
            c.err(f"{path}.level", f"地区级别“{level}”无效，可选：" + "、".join(f"{k}（{v}）" for k, v in REGION_LEVELS.items()))
            level = None
        return {"path": path, "code": code, "level": level, "parent_region": None,
                "name": c.text(raw.get("name"), f"{path}.name", max_len=column_length(Region.name)),
                "full_name": c.text(raw.get("full_name"), f"{path}.full_name", max_len=column_length(ReportCycle.region)),
                "existing": _find_code(code)}

    def _node(self, node: dict, above: dict | None) -> None:
        """Check one region of the chain against the database; plan its creation or rename."""
        c, path, existing = self.c, node["path"], node["existing"]
        parent = above["existing"] if above is not None else node["parent_region"]
        if existing is not None:
            self._existing(node, above, parent)
            return
        if not node["code"]:
            return
        if not self.manages:
            c.err(path, f"地区“{node['name'] or node['code']}”（{node['code']}）不存在；只有系统管理员可以新建地区")
            return
        if not node["name"]:
            c.err(f"{path}.name", "新建地区时必填")
        if node["level"] is None:
            c.err(f"{path}.level", "新建地区时必填：province（省）、city（市）或 county（区县）")
        parent_level = above["level"] if above is not None else (parent.level if parent is not None else None)
        if node["level"] and parent_level and LEVEL_RANK[parent_level] >= LEVEL_RANK[node["level"]]:
            c.err(f"{path}.parent", f"{REGION_LEVELS[node['level']]}级地区的上级必须是更高一级的地区"
                                    f"（文件写的是{REGION_LEVELS[parent_level]}级）")
        self.plan.new.insert(0, {"code": node["code"], "name": node["name"], "level": node["level"],
                                 "parent": parent if parent is not None else (above["code"] if above else None),
                                 "path": path})

    def _existing(self, node: dict, above: dict | None, parent: Region | None) -> None:
        c, path, region = self.c, node["path"], node["existing"]
        named_parent = above is not None or node["parent_region"] is not None
        if named_parent and parent is not None and (parent.id == region.id or parent.is_below(region)):
            c.err(f"{path}.parent", f"地区的上级关系形成了循环：{region.name} → {parent.name} → {region.name}")
        elif named_parent and (parent is None or parent.id != region.parent_id):
            now = region.parent.name if region.parent is not None else "无"
            c.err(f"{path}.parent", f"与系统中地区“{region.name}”的上级（{now}）不一致；地区的上级只能在“地区管理”中修改")
        if node["level"] and node["level"] != region.level:
            c.err(f"{path}.level", f"与系统中地区“{region.name}”的级别（{region.level_label}）不一致")
        if node["name"] and node["name"] != region.name:
            if self.manages:
                self.plan.renames.append((region, node["name"]))
            else:
                c.err(f"{path}.name", f"与系统中地区的名称“{region.name}”不一致；地区名称只能由系统管理员修改")

    # -------------------------------------------------------------- who may

    def authorize(self, path: str) -> None:
        region = self.plan.region
        if self.fixed is not None and (region is None or region.id != self.fixed.id) and not self.c.errors:
            named = self.plan.label or "（新地区）"
            self.c.err(path, f"文件指明的地区{named}与指定的地区{self.fixed.name}（{self.fixed.code}）不一致")
            return
        if region is None or self.actor is None or region.id == self.actor.region_id or self.manages:
            return
        own = self.actor.region
        self.c.err(path, f"您只能导入本地区（{own.name}）的年度报告，文件指明的地区是{self.plan.label}")


def _find_code(code: str | None) -> Region | None:
    from .regions import find_region

    return find_region(code) if code else None


def resolve_region(c, raw, actor, fixed: Region | None = None) -> RegionPlan:
    """Read ``cycle.region`` (``raw``) for ``actor`` (None: the command line's operator); ``fixed`` is
    the region the caller requires (``--region``). Problems go to the checker ``c``."""
    path = "cycle.region"
    resolver = _Resolver(c, actor, fixed)
    if isinstance(raw, dict):
        resolver.mapping(raw, path)
    elif raw is None or raw == "":
        c.err(path, "必填")
        return resolver.plan
    else:
        resolver.text(raw, path)
    resolver.authorize(path)
    return resolver.plan


def check_printed_name(c, plan: RegionPlan, year) -> None:
    """Two regions may not print the same region name for one year (the cycles are told apart by it)."""
    if not plan.printed or year is None:
        return
    q = select(ReportCycle.region_id).where(ReportCycle.region == plan.printed, ReportCycle.year == year)
    if plan.region_id is not None:
        q = q.where(ReportCycle.region_id != plan.region_id)
    if db.session.scalar(q.limit(1)) is not None:
        c.err("cycle.region", f"其他地区已有名为“{plan.printed}”的{year}年度报告，请在 full_name 中写本地区的全称")


def apply_region(plan: RegionPlan, actor, note) -> Region:
    """Create and rename what ``plan`` says (validated already); ``note(kind, action, label, fields)``
    lists each change. Returns the target region."""
    from .regions import create_region

    created: dict[str, Region] = {}
    for info in plan.new:
        parent = info["parent"]
        if isinstance(parent, str):
            parent = created[parent]
        siblings = select(func.count()).select_from(Region)
        if info["code"] == DEFAULT_REGION_CODE and parent is None and not db.session.scalar(siblings):
            region = Region(code=info["code"], name=info["name"], level=info["level"])
            db.session.add(region)
            db.session.flush()
        else:
            region = create_region(actor, info["code"], info["name"], info["level"], parent)
        created[info["code"]] = region
        note("regions", "created", f"{region.name}（{region.code}）",
             [("level", None, REGION_LEVELS[region.level]), ("parent", None, parent.name if parent else None)])
    for region, name in plan.renames:
        note("regions", "updated", f"{region.name}（{region.code}）", [("name", region.name, name)])
        region.name = name
    if plan.region is not None:
        return plan.region
    return created[plan.new[-1]["code"]]
