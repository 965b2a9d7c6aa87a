"""A fixed set of tasks and a bounded queue: where a manager runs the work that
messages from Redis start, so that no message can grow threads or memory.

Owns its tasks (threads, or green threads of the server's async mode), their
queue and the counters of queued and dropped work; knows nothing of Redis.
"""
import collections
import logging
import threading
import time

logger = logging.getLogger(__name__)

#: default number of tasks per manager
WORKERS = 4
#: default most pieces of work waiting; more are dropped
MAX_QUEUED = 1000
# While work is being dropped, one warning per this many seconds.
LOG_EVERY = 10.0

_STOP = object()


def thread_starter(target):
    """Start ``target`` in a daemon thread (when there is no server)."""
    thread = threading.Thread(target=target, daemon=True,
                              name='sio_redis_sync-worker')
    thread.start()
    return thread


class Worker:
    """Runs ``function(*args)`` submitted by :meth:`submit` in one of
    ``workers`` tasks, first in first out; at most ``max_queued`` wait.

    Work submitted while the queue is full, or after :meth:`stop`, is
    dropped and counted in :attr:`dropped`, with one warning per
    :data:`LOG_EVERY` seconds. An exception raised by the work is logged;
    the task goes on.

    :param start_task: ``start_task(target)`` starts ``target()`` as a task
                       (the server's ``start_background_task``, or
                       :func:`thread_starter`); called by :meth:`start`.
    :param workers: how many tasks run the work (at least 1).
    :param max_queued: how many pieces of work may wait (at least 1).
    :param log: the logger.
    """

    def __init__(self, start_task=thread_starter, workers=WORKERS,
                 max_queued=MAX_QUEUED, log=None):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError('workers must be a positive int, got %r' % (workers,))
        if isinstance(max_queued, bool) or not isinstance(max_queued, int) or \
                max_queued < 1:
            raise ValueError('max_queued must be a positive int, got %r'
                             % (max_queued,))
        self.start_task = start_task
        self.workers = workers
        self.max_queued = max_queued
        self._log = log or logger
        self.dropped = 0
        self._reset()

    def _reset(self):
        self._lock = threading.Lock()
        # this generation's queue and its condition (a new one at each start,
        # so that tasks of a stopped generation never take newer work)
        self._ready = threading.Condition(self._lock)
        self._queue = collections.deque()
        self._running = False
        self._stopped = False   # stop() was called (enable() undoes it)
        self._alive = 0         # tasks started and not ended, all generations
        self._logged_at = None
        self._ended = None      # notified as tasks end, while stop() waits

    @property
    def queued(self):
        """How many pieces of work are waiting."""
        return len(self._queue)

    @property
    def running(self):
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    def enable(self):
        """Let the next :meth:`submit` start the tasks (after :meth:`stop`):
        no task runs before there is work."""
        with self._lock:
            self._stopped = False

    def start(self):
        """Start the tasks (nothing if they run already)."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._stopped = False
            self._ready = ready = threading.Condition(self._lock)
            self._queue = queue = collections.deque()
            self._alive += self.workers
        for _ in range(self.workers):
            self.start_task(lambda: self._run(ready, queue))

    def stop(self, timeout=5.0):
        """Stop the tasks and wait up to ``timeout`` seconds for them to
        end: waiting work is dropped (not counted), each task ends after the
        piece it runs; work submitted later is dropped until :meth:`enable`
        or :meth:`start`."""
        with self._lock:
            self._stopped = True
            if self._running:
                self._running = False
                self._queue.clear()
                self._queue.extend([_STOP] * self.workers)
                self._ready.notify_all()
            self._ended = ended = threading.Condition(self._lock)
            ended.wait_for(lambda: self._alive <= 0, timeout)

    def after_fork(self):
        """In a forked child: the parent's tasks did not survive, its locks
        may be held forever. Start again from nothing (tasks are started by
        the next :meth:`submit` or :meth:`start`)."""
        dropped = self.dropped
        self._reset()
        self.dropped = dropped

    def submit(self, function, *args):
        """Queue ``function(*args)``; starts the tasks on first use.

        :return: False if the work was dropped (queue full, or stopped).
        """
        if not self._running and not self._stopped:
            self.start()
        with self._lock:
            if self._running and len(self._queue) < self.max_queued:
                self._queue.append((function, args))
                self._ready.notify()
                return True
            self.dropped += 1
            now = time.monotonic()
            warn = self._logged_at is None or now - self._logged_at >= LOG_EVERY
            if warn:
                self._logged_at = now
            dropped, running = self.dropped, self._running
        if warn:
            self._log.warning(
                'dropped work from Redis: %s (%d dropped so far)',
                'the queue of %d is full' % self.max_queued if running
                else 'the manager is closed', dropped)
        return False

    def _run(self, ready, queue):
        try:
            self._work(ready, queue)
        finally:
            with self._lock:
                self._alive -= 1
                ended = self._ended
                if ended is not None:
                    ended.notify_all()

    def _work(self, ready, queue):
        while True:
            with ready:
                while not queue:
                    ready.wait()
                item = queue.popleft()
            if item is _STOP:
                return
            function, args = item
            try:
                function(*args)
            except Exception:  # the work's own bug: log it, keep the task
                self._log.exception('error in work started by a message from '
                                    'Redis (%s)', getattr(function, '__name__',
                                                          function))
