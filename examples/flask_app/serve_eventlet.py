"""The demo server under eventlet: everything monkey patched first, then the
same app (``python serve_eventlet.py --port 5000``, as ``app.py`` takes).
"""
import eventlet

eventlet.monkey_patch()

import app  # noqa: E402  (after the patching, so redis-py gets green sockets)

if __name__ == '__main__':
    app.main(async_mode='eventlet')
