"""WSGI entry point for servers: ``gunicorn -k gevent livesale.wsgi:app``."""

from livesale import create_app

app = create_app()
