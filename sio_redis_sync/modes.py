"""The wire modes by name: the dialect of each, for the manager, the Emitter
and the CLI (a new mode is one entry here, its dialect module and its reader).
"""
from .classic import ClassicDialect
from .sharded import ShardedDialect

#: mode name -> its dialect class
DIALECTS = {ClassicDialect.name: ClassicDialect, ShardedDialect.name: ShardedDialect}


def new_dialect(mode, key, subscription_mode, emitter=False):
    """The dialect of ``mode`` under the prefix ``key``.

    :raises ValueError: for an unknown mode or subscription mode.
    """
    dialect = DIALECTS.get(mode)
    if dialect is None:
        raise ValueError('mode must be %s, got %r'
                         % (' or '.join(repr(name) for name in DIALECTS), mode))
    return dialect(key, subscription_mode, emitter=emitter)
