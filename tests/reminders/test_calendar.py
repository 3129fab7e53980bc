from datetime import date

from fazhi_flow.workdays import WorkCalendar, due_status

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


def test_a_due_date_on_a_holiday_is_worded_as_such():
    """Due on Saturday 4 Jan 2025: on Friday 3 Jan no working day is left, but the deadline is not today."""
    friday = due_status(date(2025, 1, 4), today=date(2025, 1, 3), calendar=CAL)
    assert (friday.days, friday.overdue) == (0, False)
    assert friday.label == "截止日为节假日，今天是截止前最后一个工作日"
    assert str(friday) == "2025年1月4日（星期六） 截止日为节假日，今天是截止前最后一个工作日"
    assert friday.css_class == "due-soon"
    # 春节 2025: due on Wed 29 Jan (a holiday from Tue 28 Jan); Mon 27 Jan is the last working day before it.
    assert due_status(date(2025, 1, 29), today=date(2025, 1, 27), calendar=CAL).label == \
        "截止日为节假日，今天是截止前最后一个工作日"
    assert due_status(date(2025, 1, 29), today=date(2025, 1, 24), calendar=CAL).label == "还剩2个工作日"
    # On Tue 28 Jan (a holiday too) no working day is left before the deadline, and today is none.
    assert due_status(date(2025, 1, 29), today=date(2025, 1, 28), calendar=CAL).label == \
        "截止日为节假日，截止前已没有工作日"
    # On the holiday itself it is due today; the day after it is overdue.
    assert due_status(date(2025, 1, 4), today=date(2025, 1, 4), calendar=CAL).label == "今天截止"
    late = due_status(date(2025, 1, 4), today=date(2025, 1, 6), calendar=CAL)
    assert late.overdue and late.label == "已逾期1个工作日"
