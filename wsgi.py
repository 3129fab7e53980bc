"""WSGI entry point: ``gunicorn wsgi:app`` (set FAZHI_ENV=production and FAZHI_SECRET_KEY)."""
from fazhi_flow import create_app

app = create_app()
