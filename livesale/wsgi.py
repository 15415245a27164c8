"""WSGI entry point for servers: ``gunicorn -k gevent livesale.wsgi:app``.

Importing it serves: besides the app, it starts this process's sender of the
group-chat robots' messages (``core.robot_sender``), once per gunicorn worker
(gunicorn imports this module in each worker, after gevent has patched it).
Claims keep workers and servers from sending one message twice at once. The
worker stops it on shutdown (``gunicorn_conf.py``). Tests and the command line
use ``create_app`` and never start it.
"""

from livesale import create_app
from livesale.core.robot_sender import RobotSender
from livesale.extensions import backend

app = create_app()
robot_sender = RobotSender.from_settings(backend.store_of(app).db, app.config).start()
