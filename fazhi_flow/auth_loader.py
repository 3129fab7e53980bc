"""Flask-Login user loading: the session carries "<id>:<token>", so a rotated token logs out."""
from .extensions import db


def init_login(login_manager) -> None:
    from .models import User

    login_manager.login_view = "auth.login"
    login_manager.login_message = "请先登录。"
    login_manager.login_message_category = "warning"

    @login_manager.user_loader
    def load_user(value: str):
        user_id, _, token = (value or "").partition(":")
        if not user_id.isdigit() or not token:
            return None
        user = db.session.get(User, int(user_id))
        if user is None or not user.active or user.session_token != token:
            return None
        return user
