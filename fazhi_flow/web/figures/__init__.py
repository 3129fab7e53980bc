"""统计指标: the values form beside the editor, rule results for review, last year's material, Word
import, indicator and rule definitions, and the indicator summary with its XLSX export."""
from flask import Blueprint

bp = Blueprint("figures", __name__, url_prefix="/figures")

from . import routes  # noqa: F401
