"""Build a city-sized report cycle for the benchmarks, in bulk, into an empty database.

300 units × 60 sections by default: 18,000 contributions in rotating states (draft, submitted,
approved, returned), two indicators per section (120), one rule per section (60), a value of every
indicator each unit enters, bodies citing their own figure, the section total, the lead unit's figure
and the next section's (``{{c<s>}}``, ``{{sum(c<s>)}}``, ``{{l<s>}}``, ``{{l<s+1>}}``), revisions and
transition logs. The rows are those of the scale tests' builder (tests/scale/world.py), so what the
benchmark measures is what the query-count tests check.

    python benchmarks/world.py [--units 300] [--sections 60] [--url sqlite:///bench.db]

The URL defaults to FAZHI_DATABASE_URL; the schema is created when the database is empty. Every
account's password is ``secret-Pass1``; the user names are printed (and returned by ``build``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(app, units: int, sections: int, cycle_state: str = "collecting") -> dict:
    """Create the schema if needed and build the world; returns ids and user names for the pages."""
    from sqlalchemy import inspect

    from fazhi_flow.extensions import db
    from tests.scale.world import build_world

    with app.app_context():
        if not inspect(db.engine).has_table("report_cycle"):
            db.create_all()
        world = build_world(db, units=units, sections=sections, cycle_state=cycle_state)
        drafts = world.ids_in("draft")
        draft_units = {}  # unit index -> one of its drafts, for the save benchmark
        for (u, _s), cid in sorted(world.contribution_ids.items()):
            if world.states[cid] == "draft":
                draft_units.setdefault(u, cid)
        info = {
            "cycle": world.cycle.id,
            "admin": world.admin.username, "reviewer": world.reviewer.username,
            "leader": world.leader.username,
            "liaison": world.liaison(0).username,
            "editor": world.first("draft", unit=0),
            "review": world.first("submitted"),
            "drafts": [(world.liaison(u).username, cid) for u, cid in sorted(draft_units.items())],
            "contributions": len(world.contribution_ids), "draft_count": len(drafts),
        }
        db.session.remove()
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--sections", type=int, default=60)
    parser.add_argument("--url", default=os.environ.get("FAZHI_DATABASE_URL"),
                        help="database URL (default: FAZHI_DATABASE_URL, else a temporary SQLite file)")
    args = parser.parse_args()
    if args.units < 1 or args.sections < 1:
        print("单位数和章节数都至少为 1。", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FAZHI_INSTANCE_PATH", tmp)
        url = args.url or f"sqlite:///{Path(tmp) / 'world.db'}"
        os.environ["FAZHI_DATABASE_URL"] = url
        from fazhi_flow import create_app
        from fazhi_flow.extensions import db

        app = create_app("development")
        started = time.perf_counter()
        try:
            info = build(app, args.units, args.sections)
        except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
            print(f"无法建立测试数据：{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
            return 1
        finally:
            with app.app_context():
                db.engine.dispose()
        print(f"built {args.units} units × {args.sections} sections = {info['contributions']} contributions "
              f"in {time.perf_counter() - started:.1f} s")
        print(f"cycle {info['cycle']}; users {info['admin']}, {info['reviewer']}, {info['leader']}, "
              f"{info['liaison']} (password secret-Pass1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
