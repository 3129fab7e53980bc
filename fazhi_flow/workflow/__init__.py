"""The two workflows (contribution and report cycle): transition tables and the one way to fire them."""
