"""Deadlines and reminders: the working-day calendar, the reminder policy, the sweep and delivery jobs,
and the APScheduler set-up that calls them."""
