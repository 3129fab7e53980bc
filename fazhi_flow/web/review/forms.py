"""Forms of the reviewer's pages."""
from flask_wtf import FlaskForm

from ..tasks.forms import DecisionForm, ReturnForm

__all__ = ["BulkApproveForm", "DecisionForm", "ReturnForm"]


class BulkApproveForm(FlaskForm):
    """Only the CSRF token; the ids and versions are read from the request (``ids``, ``v<id>``)."""
