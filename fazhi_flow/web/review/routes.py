"""Routes of the review area."""
