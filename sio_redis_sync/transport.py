"""The Redis calls the manager and the Emitter share: NUMSUB, and a request
answered on a short-lived response subscription.

Owns no connection (callers pass their client) and turns every Redis failure
into :class:`PublishError`, so a caller learns that its message was not sent.
"""
import logging
import time

import redis

from . import protocol
from .exceptions import ProtocolError, PublishError
from .requests import new_request_id

PUBLISH_ERRORS = (redis.RedisError, OSError)
logger = logging.getLogger('sio_redis_sync')


def numsub(client, channel):
    """How many subscribers ``channel`` has (Node's ``serverCount()`` when it
    is a request channel)."""
    try:
        ((_, count),) = client.pubsub_numsub(channel)
    except PUBLISH_ERRORS as exc:
        raise PublishError(channel, exc) from exc
    return count


def ask(client, publish, channels, uid, entry, payload, timeout, log=logger):
    """Publish the request ``payload`` and read the answers on a response
    subscription of its own, closed on return (for processes that do not
    listen, like the Emitter).

    :param publish: ``publish(channel, payload)``, the caller's own (with its
                    deadline and counters).

    :param entry: a factory ``entry(servers)`` of the pending entry
                  (:class:`~sio_redis_sync.requests.Replies` or
                  :class:`~sio_redis_sync.requests.Acks`) that counts the
                  answers; ``servers`` is how many servers will answer.
    :param payload: ``payload(request_id)``, the request's bytes.
    :return: what the entry collected.
    :raises sio_redis_sync.RequestTimeout: after ``timeout`` seconds.
    :raises sio_redis_sync.PublishError: if Redis failed.
    """
    deadline = time.monotonic() + timeout
    request_id = new_request_id()
    pubsub = client.pubsub()
    try:
        # subscribed before counting and publishing: no answer is missed
        confirm(pubsub, 'subscribe', deadline, channels.response,
                channels.response, channels.response_for(uid))
        pending = entry(numsub(client, channels.request))
        if pending.done.is_set():
            return pending.replies
        publish(channels.request, payload(request_id))
        return read_answers(pubsub, 'message', protocol.decode_response, pending,
                            request_id, deadline, timeout, channels.response, log)
    finally:
        pubsub.close()


def confirm(pubsub, kind, deadline, where, *channels):
    """``pubsub.<kind>(*channels)`` (``subscribe`` or ``ssubscribe``), then
    read until Redis confirmed each channel or ``deadline`` passed.

    :raises sio_redis_sync.PublishError: naming ``where`` if Redis failed.
    """
    try:
        getattr(pubsub, kind)(*channels)
        confirmed = 0
        while confirmed < len(channels) and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=deadline - time.monotonic())
            if message is not None and message['type'] == kind:
                confirmed += 1
    except PUBLISH_ERRORS as exc:
        raise PublishError(where, exc) from exc


def read_answers(pubsub, kind, decode, pending, request_id, deadline, timeout,
                 where, log=logger):
    """Feed ``pending`` the answers to ``request_id`` read on ``pubsub``
    (messages of type ``kind``, each ``decode``-d into a response dict, or
    None for another kind of message) until it is done.

    :return: what ``pending`` collected.
    :raises sio_redis_sync.RequestTimeout: at ``deadline``.
    :raises sio_redis_sync.PublishError: naming ``where`` if Redis failed.
    """
    while not pending.done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise pending.timed_out(timeout)
        try:
            message = pubsub.get_message(timeout=remaining)
        except PUBLISH_ERRORS as exc:
            raise PublishError(where, exc) from exc
        if message is None or message['type'] != kind:
            continue
        try:
            response = decode(message['data'])
        except ProtocolError as exc:
            log.warning('dropped a malformed response on %r: %s',
                        message['channel'], exc)
            continue
        if response is not None and response['requestId'] == request_id:
            pending.feed(response)
    return pending.replies
