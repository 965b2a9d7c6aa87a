"""Exceptions raised by sio_redis_sync.

Owns the error hierarchy only; nothing here does I/O (error texts are
redacted with :func:`sio_redis_sync.connection.redact`).
"""


class SioRedisError(Exception):
    """Base class of every error raised by :mod:`sio_redis_sync`."""


class ProtocolError(SioRedisError, ValueError):
    """A payload read from Redis is not a valid message of the Node protocol.

    Raised only by the decoders of :mod:`sio_redis_sync.protocol`; the
    listener logs it with the channel and drops the message.
    """


class PublishError(SioRedisError):
    """A message could not be published to Redis.

    The Redis exception that caused it is chained as ``__cause__``.

    :param channel: the channel the message was meant for.
    :param cause: the exception that made it fail; its text is redacted,
                  and so are its ``args`` (redis-py 6 puts a connection's
                  repr, password included, in some errors).
    :param secrets: passwords to hide too, wherever they appear in it (see
                    :func:`sio_redis_sync.connection.redact`).
    """

    def __init__(self, channel, cause, secrets=()):
        from .connection import redact  # the one redaction, kept out of imports
        self.channel = channel
        text = str(cause)
        shown = redact(text, secrets)
        if shown != text:
            # the cause is chained and shown in tracebacks: redacted too
            cause.args = tuple(redact(arg, secrets) if isinstance(arg, str)
                               else arg for arg in cause.args)
        super().__init__('could not publish to Redis channel %r: %s: %s'
                         % (channel, type(cause).__name__, shown))


class PartialDelivery(PublishError):
    """A publish reached fewer servers than usual because some were
    subscribing again after a Redis outage: they missed the message (Redis
    Pub/Sub keeps nothing). The others, and this server's own clients, may
    have it; send again if a duplicate is better than a loss.

    :ivar receivers: how many subscribers Redis delivered it to.
    :ivar expected: how many it usually reaches.
    """

    def __init__(self, channel, receivers, expected):
        self.channel = channel
        self.receivers = receivers
        self.expected = expected
        SioRedisError.__init__(
            self, 'a message on Redis channel %r reached %d of the usual %d '
            'subscribers: a server was subscribing again after a Redis '
            'outage and missed it' % (channel, receivers, expected))


class RequestTimeout(SioRedisError, TimeoutError):
    """Not every server answered a cluster request in time.

    Carries what did arrive: ``replies`` (the answers or acks so far),
    ``received`` of ``expected`` servers, and for acks ``acks`` as
    ``(arrived, expected)``.
    """

    def __init__(self, what, timeout, replies, received, expected, acks=None):
        self.what = what
        self.timeout = timeout
        self.replies = replies
        self.received = received
        self.expected = expected
        self.acks = acks
        message = '%s timed out after %.3g s: %d of %d servers responded' % (
            what, timeout, received, expected)
        if acks is not None:
            message += ', %d of %d client acks arrived' % acks
        super().__init__(message)
