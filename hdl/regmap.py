# TEMPORARY during the spec refactor: the register map moved to neurram.spec.regmap.
from neurram.spec.regmap import *  # noqa: F401,F403
from neurram.spec.regmap import BROADCAST_CORE, CORE_SHIFT, OFFSET_BITS, SPACE_SHIFT  # noqa: F401
