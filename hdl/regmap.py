# TEMPORARY during the spec refactor: the register map moved to neurram.spec.regmap.
from neurram.spec import regmap as _rm
from neurram.spec.regmap import *  # noqa: F401,F403
from neurram.spec.regmap import BROADCAST_CORE, CORE_SHIFT, OFFSET_BITS, SPACE_SHIFT  # noqa: F401

BUFFERS = tuple(_rm.BUFFERS.values())
REGISTERS = tuple(_rm.REGISTERS.values())


def buffer_words(buf, config):
    return buf.words_per_core(config)
