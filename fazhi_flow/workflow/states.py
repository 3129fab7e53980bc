"""The transition tables: the one place where states, events and who may fire them are declared.

The README's state diagrams are generated from these tables (``fazhi-flow diagrams``).
"""

CONTRIBUTION_STATE_LABELS = {
    "draft": "起草中",
    "unit_review": "待单位审核",
    "submitted": "待审核",
    "returned": "已退回",
    "approved": "已通过",
}
CONTRIBUTION_STATES = list(CONTRIBUTION_STATE_LABELS)

CONTRIBUTION_EVENT_LABELS = {
    "submit": "提交审核",
    "recall": "撤回",
    "unit_approve": "同意报送",
    "unit_return": "退回修改",
    "approve": "通过",
    "return": "退回修改",
    "reopen": "重新打开",
}

# "if" names a condition: on the contribution's cycle (the unit head's approval is required or not) or
# on its countersign (other required reviewers still to approve or not). "label" names a row whose
# event reads differently in the diagrams.
CONTRIBUTION_TRANSITIONS = [
    {"trigger": "submit", "source": ["draft", "returned"], "dest": "unit_review",
     "if": "unit_head_review"},
    {"trigger": "submit", "source": ["draft", "returned"], "dest": "submitted",
     "if": "no_unit_head_review"},
    {"trigger": "unit_approve", "source": ["unit_review"], "dest": "submitted"},
    {"trigger": "unit_return", "source": ["unit_review"], "dest": "returned"},
    {"trigger": "recall", "source": ["unit_review", "submitted"], "dest": "draft"},
    # 会签: in a section approved by all its named reviewers ('all'), an approval while others are
    # still required stays in submitted (recorded as ContributionApproval); the last one approves.
    # A section approved by any one reviewer ('any') has nobody pending: one approval decides.
    {"trigger": "approve", "source": ["submitted"], "dest": "submitted", "if": "countersign_pending",
     "label": "会签同意"},
    {"trigger": "approve", "source": ["submitted"], "dest": "approved", "if": "countersign_complete"},
    {"trigger": "return", "source": ["submitted"], "dest": "returned"},
    {"trigger": "reopen", "source": ["approved"], "dest": "returned"},
]

# Who may fire each event. "liaison"/"unit_head" mean: holding that role in the contribution's unit;
# "section_reviewer": a reviewer named for the section (or any reviewer when none is named), never of
# the contribution's own unit.
CONTRIBUTION_EVENT_ACTORS = {
    "submit": "liaison",
    "recall": "liaison",
    "unit_approve": "unit_head",
    "unit_return": "unit_head",
    "approve": "section_reviewer",
    "return": "section_reviewer",
    "reopen": "admin",
}
CONTRIBUTION_COMMENT_REQUIRED = {"unit_return", "return", "reopen"}

# How a section's material is approved (Section.review_mode).
REVIEW_MODE_LABELS = {"any": "任一审核人通过", "all": "全部审核人会签"}

CYCLE_STATE_LABELS = {
    "setup": "筹备中",
    "collecting": "征集中",
    "compiling": "汇总编辑中",
    "signoff": "待签发",
    "signed": "已签发",
    "published": "已发布",
    "correcting": "更正待签发",
}
CYCLE_STATES = list(CYCLE_STATE_LABELS)

CYCLE_EVENT_LABELS = {
    "open": "开始征集",
    "compile": "进入汇总编辑",
    "reopen_collection": "重新征集",
    "request_signoff": "提请签发",
    "sign": "签发",
    "return": "退回修改",
    "publish": "发布",
    "request_correction": "提请签发更正",
}

# A correction (更正) of a published report is signed like the report: the admin edits the draft while
# it is published, asks for the leader's signature with a note, and signing publishes the next version
# (returning leaves the published versions as they are). Public pages show every published version
# throughout.
CYCLE_TRANSITIONS = [
    {"trigger": "open", "source": ["setup"], "dest": "collecting"},
    {"trigger": "compile", "source": ["collecting"], "dest": "compiling"},
    {"trigger": "reopen_collection", "source": ["compiling"], "dest": "collecting"},
    {"trigger": "request_signoff", "source": ["compiling"], "dest": "signoff"},
    {"trigger": "sign", "source": ["signoff"], "dest": "signed"},
    {"trigger": "return", "source": ["signoff"], "dest": "compiling"},
    {"trigger": "publish", "source": ["signed"], "dest": "published"},
    {"trigger": "request_correction", "source": ["published"], "dest": "correcting"},
    {"trigger": "sign", "source": ["correcting"], "dest": "published"},
    {"trigger": "return", "source": ["correcting"], "dest": "published"},
]

CYCLE_EVENT_ACTORS = {
    "open": "admin",
    "compile": "admin",
    "reopen_collection": "admin",
    "request_signoff": "admin",
    "sign": "leader",
    "return": "leader",
    "publish": "admin",
    "request_correction": "admin",
}
# The comment of request_correction is the correction note (更正说明) published with the new version.
CYCLE_COMMENT_REQUIRED = {"return", "request_correction"}
