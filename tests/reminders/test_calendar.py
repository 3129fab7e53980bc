from datetime import date

from fazhi_flow.reminders.calendar import WorkCalendar, due_status

CAL = WorkCalendar()


def test_official_holidays_and_adjusted_workdays():
    assert not CAL.is_working_day(date(2025, 1, 1))       # 元旦
    assert CAL.is_working_day(date(2025, 1, 26))          # Sunday, 调休 before 春节
    assert not CAL.is_working_day(date(2025, 1, 29))      # 春节
    assert not CAL.is_working_day(date(2025, 1, 4))       # ordinary Saturday
    assert CAL.is_working_day(date(2025, 1, 6))


def test_counting_across_the_spring_festival():
    # Working days after Fri 24 Jan up to Fri 7 Feb 2025: 26, 27 Jan (调休 Sunday + Monday), 5, 6, 7 Feb.
    assert CAL.working_days_between(date(2025, 1, 24), date(2025, 2, 7)) == 5
    assert CAL.signed_working_days(date(2025, 2, 7), date(2025, 1, 24)) == -5
    assert CAL.add_working_days(date(2025, 1, 27), 1) == date(2025, 2, 5)


def test_fallback_for_years_the_package_does_not_cover():
    assert not WorkCalendar().covered_officially(date(2031, 5, 1))
    # Weekends only: 1 May 2031 is a Thursday and counts as a working day in the fallback ...
    assert CAL.is_working_day(date(2031, 5, 1))
    assert not CAL.is_working_day(date(2031, 5, 3))
    # ... unless the office enters it as an extra holiday; a weekend can be made a working day.
    cal = WorkCalendar.from_config({"EXTRA_HOLIDAYS": "2031-05-01, 2031-05-02",
                                    "EXTRA_WORKDAYS": ["2031-04-27"]})
    assert not cal.is_working_day(date(2031, 5, 1))
    assert cal.is_working_day(date(2031, 4, 27))
    assert cal.working_days_between(date(2031, 4, 30), date(2031, 5, 5)) == 1


def test_due_status_labels():
    s = due_status(date(2025, 1, 10), today=date(2025, 1, 7), calendar=CAL)
    assert (s.days, s.overdue, s.label) == (3, False, "还剩3个工作日")
    assert s.date_label == "2025年1月10日（星期五）"
    assert due_status(date(2025, 1, 10), today=date(2025, 1, 10), calendar=CAL).label == "今天截止"
    late = due_status(date(2025, 1, 10), today=date(2025, 1, 14), calendar=CAL)
    assert (late.days, late.overdue, late.label, late.css_class) == (-2, True, "已逾期2个工作日", "due-overdue")
    assert due_status(None).label == "未设截止日期"
    assert due_status(date(2025, 1, 10), today=date(2025, 1, 14), done=True, calendar=CAL).label == ""
