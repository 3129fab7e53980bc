from sqlalchemy import func, select

from fazhi_flow.models.reminder import Reminder


def test_remind_dry_run_then_real_then_deliver(factory, db, runner, smtp):
    factory.world()
    db.session.commit()
    dry = runner.invoke(args=["fazhi", "remind", "--at", "2025-01-07T09:00+08:00", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "截止前提醒" in dry.output and "区司法局" in dry.output and "试运行" in dry.output
    assert db.session.scalar(select(func.count()).select_from(Reminder)) == 0
    real = runner.invoke(args=["fazhi", "remind", "--at", "2025-01-07T09:00+08:00"])
    assert "已加入待发消息的提醒 2 条" in real.output
    again = runner.invoke(args=["fazhi", "remind", "--at", "2025-01-07T09:00+08:00"])
    assert "提醒 0 条" in again.output and "跳过 2 条" in again.output
    sent = runner.invoke(args=["fazhi", "deliver", "--at", "2025-01-07T09:01+08:00"])
    assert sent.exit_code == 0 and "已发送 2 条" in sent.output
    assert len(smtp.messages) == 2


def test_remind_rejects_a_bad_time(db, runner):
    result = runner.invoke(args=["fazhi", "remind", "--at", "明天早上"])
    assert result.exit_code == 2 and "不是有效时间" in result.output
