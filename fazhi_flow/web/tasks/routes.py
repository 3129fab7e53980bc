"""Routes of the tasks area (filled in below)."""
