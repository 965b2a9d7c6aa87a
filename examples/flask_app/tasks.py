"""The demo's Celery app: a job that reports its progress to the room of the
user who started it, from the worker, through ``sio_redis_sync.Emitter``.

Run a worker with ``celery --workdir examples/flask_app -A tasks worker``
(``run.sh`` starts one); ``settings`` says which Redis and queue.
"""
import time

from celery import Celery, current_task

import settings
from sio_redis_sync import Emitter

celery = Celery('demo', broker=settings.BROKER_URL)
celery.conf.update(task_default_queue=settings.QUEUE, task_ignore_result=True,
                   broker_connection_retry_on_startup=True,
                   worker_hijack_root_logger=False)

# One per worker process: thread-safe, and it connects on the first emit.
emitter = Emitter(settings.REDIS_URL, key=settings.KEY, mode='streams',
                  stream_name=settings.KEY)


@celery.task
def run_job(room, job_id, steps=10, pause=0.3):
    """Work for ``steps`` x ``pause`` seconds, telling ``room`` after each step."""
    worker = current_task.request.hostname
    for step in range(steps + 1):
        if step:
            time.sleep(pause)
        emitter.emit('progress', {'job': job_id, 'step': step, 'steps': steps,
                                  'pct': 100 * step // steps, 'worker': worker},
                     to=room)
