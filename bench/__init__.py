"""The benchmark suite: sio_redis_sync against python-socketio and Node, same run.

Run it with ``bash bench/run.sh`` (or ``.venv/bin/python -m bench``); see
``bench/REPORT.md`` for the latest numbers and how they were taken.
"""
