"""Where the demo's processes meet: one Redis for the Socket.IO cluster and,
in another database of it, Celery's broker; all read from the environment.

``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) is the cluster's Redis;
``DEMO_BROKER_URL`` overrides the broker (default: the same Redis, database 1,
or 2 when the cluster uses 1); ``DEMO_KEY`` is the cluster's channel prefix
(default ``socket.io``, Node's) and ``DEMO_QUEUE`` the Celery queue (``demo``).
"""
import os
import urllib.parse

DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379/0'


def broker_url_for(redis_url):
    """The Redis of ``redis_url`` with another database number, for Celery."""
    parts = urllib.parse.urlsplit(redis_url)
    database = parts.path.strip('/') or '0'
    return urllib.parse.urlunsplit(
        parts._replace(path='/2' if database == '1' else '/1'))


REDIS_URL = os.environ.get('REDIS_URL') or DEFAULT_REDIS_URL
BROKER_URL = os.environ.get('DEMO_BROKER_URL') or broker_url_for(REDIS_URL)
KEY = os.environ.get('DEMO_KEY') or 'socket.io'
QUEUE = os.environ.get('DEMO_QUEUE') or 'demo'
