"""What the API takes and answers, as pydantic models: they validate requests and are the OpenAPI
document's schemas. Limits match what the database holds (int32 ids, column lengths)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..services.contributions import MAX_BODY_CHARS
from ..services.figures import MAX_EXPLANATION_CHARS
from ..web.tasks.forms import COMMENT_MAX
from ..whole_numbers import DB_INT_MAX



def _utc(value: datetime) -> datetime:
    """Stored times are UTC without a zone; the API says so (RFC 3339 needs the offset)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


Utc = Annotated[datetime, AfterValidator(_utc)]
Id = Annotated[int, Field(ge=1, le=DB_INT_MAX)]
Version = Annotated[int, Field(ge=1, le=DB_INT_MAX, description="读取时的版本号；与当前版本不同时返回 409")]
ContributionState = Literal["draft", "unit_review", "submitted", "returned", "approved"]


class In(BaseModel):
    """A request body: unknown fields are refused by name, types are not guessed."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---------------------------------------------------------------- problems


class FieldError(Out):
    field: str = Field(description="出错的字段，如 body、values.xzfy")
    message: str = Field(description="中文说明")


class Problem(Out):
    """RFC 9457 problem details (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


# ---------------------------------------------------------------- me, cycles, outline, assignments


class Me(Out):
    id: int
    username: str
    name: str
    roles: list[str]
    unit_id: int | None
    unit_name: str | None
    region_id: int
    token_scope: Literal["read", "write"]
    token_expires_at: Utc


class Cycle(Out):
    id: int
    year: int
    region: str
    title: str
    state: str
    state_label: str
    due: date | None
    unit_head_review: bool


class CycleList(Out):
    items: list[Cycle]


class OutlineSection(Out):
    id: int
    parent_id: int | None
    number: str = Field(description="编号，如“一、”“（二）”")
    title: str | None
    depth: int
    is_leaf: bool
    guidance: str | None
    word_limit: int | None
    due: date | None


class Outline(Out):
    cycle_id: int
    sections: list[OutlineSection]


class AssignmentItem(Out):
    id: int
    section_id: int
    section_title: str
    unit_id: int
    unit_name: str
    role: Literal["lead", "support"]
    due: date | None
    contribution_id: int | None
    state: str = Field(description="材料状态；尚未开始为 pending")


class AssignmentList(Out):
    cycle_id: int
    items: list[AssignmentItem]
    page: int
    per_page: int
    total: int


class AssignmentQuery(BaseModel):
    page: Annotated[int, Field(ge=1, le=DB_INT_MAX)] = 1
    per_page: Annotated[int, Field(ge=1, le=500)] = 200


class UnitStatus(Out):
    unit_id: int
    unit_name: str
    total: int
    approved: int
    overdue: int
    completion: float | None
    on_time_rate: float | None
    counts: dict[str, int]


class CycleStatus(Out):
    cycle_id: int
    state: str
    total: int
    overdue: int
    completion: float | None = Field(description="审核通过的材料占全部任务的比例")
    counts: dict[str, int] = Field(description="各状态的材料数（pending 为尚未开始）")
    restricted_to_unit: bool = Field(description="true：只统计本单位")
    unit_count: int
    page: int
    pages: int
    units: list[UnitStatus]


class StatusQuery(BaseModel):
    page: Annotated[int, Field(ge=1, le=DB_INT_MAX)] = 1


# ---------------------------------------------------------------- contributions


class ContributionSummary(Out):
    id: int
    cycle_id: int
    section_id: int
    section_title: str | None
    unit_id: int
    unit_name: str
    state: str
    state_label: str
    version: int
    updated_at: Utc
    submitted_at: Utc | None


class ContributionPage(Out):
    items: list[ContributionSummary]
    page: int
    per_page: int
    total: int


class ContributionQuery(BaseModel):
    cycle: Id | None = None
    state: ContributionState | None = None
    unit: Id | None = None
    page: Annotated[int, Field(ge=1, le=DB_INT_MAX)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 50


class RevisionInfo(Out):
    number: int
    author: str | None
    created_at: Utc


class CommentInfo(Out):
    event: str
    from_state: str
    to_state: str
    actor: str | None
    comment: str | None
    created_at: Utc


class ContributionDetail(ContributionSummary):
    body: str
    revisions: list[RevisionInfo]
    comments: list[CommentInfo] = Field(description="流转记录（含审核意见），按时间先后")


class DraftIn(In):
    body: Annotated[str, Field(max_length=MAX_BODY_CHARS, description="正文（纯文本，段落之间空一行）")]
    version: Version


class VersionIn(In):
    version: Version


class DecisionIn(In):
    version: Version
    comment: Annotated[str, Field(max_length=COMMENT_MAX)] | None = None


class ReturnIn(In):
    version: Version
    comment: Annotated[str, Field(min_length=1, max_length=COMMENT_MAX, description="退回意见（必填）")]
    paragraph: Annotated[int, Field(ge=1, le=DB_INT_MAX, description="针对第几段")] | None = None


# ---------------------------------------------------------------- indicator values


class ValueRow(Out):
    code: str
    name: str
    measure: str
    required: bool
    value: str | None = Field(description="数值（文字形式，保留填报的精度）")
    previous: str | None = Field(description="上年度的数值")
    explanation: str | None


class Explainable(Out):
    key: str
    message: str
    explanation: str


class Values(Out):
    contribution_id: int
    editable: bool
    stamp: str = Field(description="数值的指纹；保存时带上，数值已被他人修改则返回 409")
    rows: list[ValueRow]
    explainable: list[Explainable]
    blocking: list[str] = Field(description="提交审核前必须解决的问题")


Code = Annotated[str, Field(min_length=1, max_length=60)]
ValueText = Annotated[str, Field(max_length=100)]


class ValuesIn(In):
    values: dict[Code, ValueText | int | None] = Field(
        default_factory=dict, max_length=1000, description="指标代码 → 数值（文字或整数；空或 null 清除）")
    explanations: dict[Annotated[str, Field(min_length=1, max_length=80)],
                       Annotated[str, Field(max_length=MAX_EXPLANATION_CHARS)]] = Field(
        default_factory=dict, max_length=1000, description="提示的键 → 说明")
    stamp: Annotated[str, Field(max_length=64)] | None = None


# ---------------------------------------------------------------- publications


class PublicationFile(Out):
    format: Literal["txt", "html", "docx", "pdf"]
    url: str
    content_type: str
    sha256: str | None = Field(description="文件的 SHA-256；PDF 尚未生成时为 null")
    ready: bool


class PublicationItem(Out):
    id: int
    cycle_id: int
    year: int
    region: str
    title: str
    version: int
    published_at: Utc
    correction_note: str | None
    pdf_status: str


class PublicationList(Out):
    items: list[PublicationItem]
    page: int
    per_page: int
    total: int


class PublicationQuery(BaseModel):
    page: Annotated[int, Field(ge=1, le=DB_INT_MAX)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 50


class PublicationDetail(PublicationItem):
    files: list[PublicationFile]
