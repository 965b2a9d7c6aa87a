"""The wire modes by name: the dialect of each, for the manager, the Emitter
and the CLI (a new mode is one entry here, its dialect module and its reader).
"""
from .classic import ClassicDialect
from .sharded import ShardedDialect
from .streams import StreamsDialect

#: mode name -> its dialect class
DIALECTS = {ClassicDialect.name: ClassicDialect, ShardedDialect.name: ShardedDialect,
            StreamsDialect.name: StreamsDialect}


def new_dialect(mode, key, subscription_mode, emitter=False, **options):
    """The dialect of ``mode`` under the prefix ``key``.

    :param options: the mode's own options (streams mode: ``stream_name``,
                    ``stream_count``, ``max_len``, ``use_sharded_pubsub``);
                    those left None take the mode's defaults.
    :raises ValueError: for an unknown mode or subscription mode, or an
                        option the mode does not have.
    """
    dialect = DIALECTS.get(mode)
    if dialect is None:
        raise ValueError('mode must be %s, got %r'
                         % (' or '.join(repr(name) for name in DIALECTS), mode))
    given = {name: value for name, value in options.items() if value is not None}
    if given and dialect is not StreamsDialect:
        raise ValueError("%s need mode='streams'" % ', '.join(sorted(given)))
    return dialect(key, subscription_mode, emitter=emitter, **given)
